// Retention against real database files: what a batch deletes, what it
// always keeps, and that freed pages are reused.
#include "storage/retention.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "storage/report.h"
#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;  // TempDir and the storage fixtures

// A delivery of run `run` received at `at`, unique by `n`, with a body
// padded to about `pad` bytes.
WebhookDelivery delivery_at(int run, std::int64_t at, int n, std::size_t pad = 0) {
  WebhookDelivery d = delivery(completed(run, at, n % 10), at);
  d.delivery_key = "id:" + std::to_string(n);
  d.body += std::string(pad, ' ');
  return d;
}

class RetentionTest : public StoreTest {
 protected:
  void journal(int run, std::int64_t at, int n, std::size_t pad = 0) {
    ASSERT_TRUE(store->begin().is_ok());
    auto r = store->journal().apply(delivery_at(run, at, n, pad));
    ASSERT_TRUE(r.is_ok()) << r.message();
    ASSERT_TRUE(store->commit().is_ok());
  }

  // One batch in its own transaction.
  PruneBatch prune(HistoryTable table, std::int64_t cutoff,
                   std::int64_t after = std::numeric_limits<std::int64_t>::min(),
                   std::int64_t limit = kMaxPruneBatch) {
    EXPECT_TRUE(store->begin().is_ok());
    auto batch = prune_batch(*store, table, cutoff, after, limit);
    EXPECT_TRUE(batch.is_ok()) << batch.message();
    EXPECT_TRUE(store->commit().is_ok());
    return batch.is_ok() ? batch.value() : PruneBatch{};
  }

  // Batches until one says there is no more; returns the rows deleted.
  std::int64_t prune_all(HistoryTable table, std::int64_t cutoff, std::int64_t limit) {
    std::int64_t deleted = 0;
    PruneBatch batch;
    do {
      batch = prune(table, cutoff, batch.last_key, limit);
      deleted += batch.deleted;
    } while (batch.more);
    return deleted;
  }

  void poll_cycle(std::int64_t project, std::int64_t started_at, bool finished, bool ok) {
    ASSERT_TRUE(store->begin().is_ok());
    auto id = store->poll_cycles().begin(project, PollKind::kActive, started_at);
    ASSERT_TRUE(id.is_ok()) << id.message();
    if (finished) {
      const std::optional<std::string> error =
          ok ? std::nullopt : std::optional<std::string>("HTTP 500");
      ASSERT_TRUE(store->poll_cycles().finish(*id, {}, error, started_at + 1).is_ok());
    }
    ASSERT_TRUE(store->commit().is_ok());
  }

  std::int64_t rows(const std::string& sql) { return count(store->db(), sql); }
};

TEST_F(RetentionTest, JournalRowsOlderThanTheCutoffGoNewerOnesStay) {
  for (int i = 0; i < 30; ++i) journal(1 + i % 3, 1000 + i, i);  // received 1000..1029
  const PruneBatch batch = prune(HistoryTable::kWebhookEvents, 1020);
  EXPECT_EQ(batch.deleted, 20);
  EXPECT_FALSE(batch.more);  // it saw every row
  EXPECT_EQ(rows("SELECT count(*) FROM webhook_events"), 10);
  EXPECT_EQ(rows("SELECT min(received_at) FROM webhook_events"), 1020);
  // The runs those deliveries made, and their change log, are not touched.
  EXPECT_EQ(rows("SELECT count(*) FROM runs"), 3);
  const std::int64_t changes = rows("SELECT count(*) FROM run_changes");
  EXPECT_GT(changes, 0);
  prune(HistoryTable::kWebhookEvents, 5000);
  EXPECT_EQ(rows("SELECT count(*) FROM runs"), 3);
  EXPECT_EQ(rows("SELECT count(*) FROM run_changes"), changes);
}

TEST_F(RetentionTest, TheNewestJournalRowStaysWhateverItsAge) {
  for (int i = 0; i < 5; ++i) journal(1, 1000 + i, i);
  EXPECT_EQ(prune(HistoryTable::kWebhookEvents, 99999).deleted, 4);
  EXPECT_EQ(rows("SELECT count(*) FROM webhook_events"), 1);
  EXPECT_EQ(rows("SELECT received_at FROM webhook_events"), 1004);
  // seq goes on above it, so readers that follow seq miss nothing.
  const std::int64_t last = rows("SELECT max(seq) FROM webhook_events");
  journal(1, 2000, 99);
  EXPECT_GT(rows("SELECT max(seq) FROM webhook_events"), last);
}

TEST_F(RetentionTest, TombstonesStay) {
  ASSERT_TRUE(store->begin().is_ok());
  auto r = store->journal().apply(delivery(
      R"({"event_name":"run.deleted","timestamp":100,"payload":{"id":7},"project_code":"ID"})",
      100));
  ASSERT_TRUE(r.is_ok()) << r.message();
  ASSERT_TRUE(store->commit().is_ok());
  journal(8, 200, 1);
  journal(8, 300, 2);
  for (const HistoryTable table : kHistoryTables) prune(table, 99999);
  EXPECT_EQ(rows("SELECT count(*) FROM webhook_events WHERE run_id = 7"), 0);
  EXPECT_EQ(store->db().execAndGet("SELECT state FROM runs WHERE run_id = 7").getString(),
            "deleted");
  EXPECT_EQ(rows("SELECT count(*) FROM runs"), 2);
}

TEST_F(RetentionTest, BatchesFollowTheKeyAndStopAtTheWindow) {
  for (int i = 0; i < 25; ++i) journal(1, 1000 + i, i);
  PruneBatch first =
      prune(HistoryTable::kWebhookEvents, 1020, std::numeric_limits<std::int64_t>::min(), 10);
  EXPECT_EQ(first.deleted, 10);
  EXPECT_TRUE(first.more);
  EXPECT_EQ(first.last_key, lowest_number_at(kTestUnixMs) + 9);  // the 10th row
  PruneBatch second = prune(HistoryTable::kWebhookEvents, 1020, first.last_key, 10);
  EXPECT_EQ(second.deleted, 10);
  EXPECT_TRUE(second.more);
  // Rows 21..25 are inside the window: nothing more to find.
  PruneBatch third = prune(HistoryTable::kWebhookEvents, 1020, second.last_key, 10);
  EXPECT_EQ(third.deleted, 0);
  EXPECT_FALSE(third.more);
  EXPECT_EQ(rows("SELECT count(*) FROM webhook_events"), 5);
}

TEST_F(RetentionTest, ABatchDeletesAtMostTheLimit) {
  ASSERT_TRUE(store->begin().is_ok());
  for (int i = 0; i < 1500; ++i)
    ASSERT_TRUE(store->journal().apply(delivery_at(1, 1000, i)).is_ok());
  ASSERT_TRUE(store->commit().is_ok());
  PruneBatch batch =
      prune(HistoryTable::kWebhookEvents, 2000, std::numeric_limits<std::int64_t>::min(), 5000);
  EXPECT_EQ(batch.deleted, kMaxPruneBatch);
  EXPECT_TRUE(batch.more);
}

TEST_F(RetentionTest, PollCyclesKeepEachProjectsNewestAndNewestSuccessfulRow) {
  // Project 1: ok, ok, failed, failed; project 2: ok, running (unfinished).
  poll_cycle(1, 100, true, true);
  poll_cycle(1, 110, true, true);  // newest successful of project 1
  poll_cycle(2, 115, true, true);  // newest successful of project 2
  poll_cycle(1, 120, true, false);
  poll_cycle(1, 130, true, false);   // newest of project 1
  poll_cycle(2, 135, false, false);  // newest of project 2
  poll_cycle(3, 140, true, false);   // project 3 never succeeded:
  poll_cycle(3, 141, true, false);
  poll_cycle(3, 142, true, false);  // only its newest stays
  EXPECT_EQ(prune_all(HistoryTable::kPollCycles, 99999, 2), 4);
  SQLite::Statement left(store->db(), "SELECT started_at FROM poll_cycles ORDER BY id");
  std::vector<std::int64_t> kept;
  while (left.executeStep()) kept.push_back(left.getColumn(0).getInt64());
  EXPECT_EQ(kept, (std::vector<std::int64_t>{110, 115, 130, 135, 142}));
}

TEST_F(RetentionTest, PollCyclesInsideTheWindowStay) {
  for (int i = 0; i < 10; ++i) poll_cycle(1, 100 + i, true, true);
  EXPECT_EQ(prune_all(HistoryTable::kPollCycles, 105, 1000), 5);
  EXPECT_EQ(rows("SELECT min(started_at) FROM poll_cycles"), 105);
}

TEST_F(RetentionTest, RunChangesOlderThanTheCutoffGoTheNewestStays) {
  for (int i = 0; i < 10; ++i) journal(i + 1, 1000 + i, i);  // one change each
  ASSERT_EQ(rows("SELECT count(*) FROM run_changes"), 10);
  EXPECT_EQ(prune_all(HistoryTable::kRunChanges, 1005, 3), 5);
  EXPECT_EQ(rows("SELECT min(changed_at) FROM run_changes"), 1005);
  EXPECT_EQ(prune_all(HistoryTable::kRunChanges, 99999, 3), 4);
  EXPECT_EQ(rows("SELECT count(*) FROM run_changes"), 1);
  // change_seq goes on above the row kept.
  const std::int64_t last = rows("SELECT max(seq) FROM run_changes");
  journal(42, 3000, 42);
  EXPECT_GT(rows("SELECT change_seq FROM runs WHERE run_id = 42"), last);
}

// Fill and prune repeatedly: once the first deletes have freed pages, new
// rows go into them and the file stops growing (auto_vacuum is off: free
// pages stay in the file, on SQLite's free list, for reuse).
TEST_F(RetentionTest, FreedPagesAreReusedSoTheFileStopsGrowing) {
  ASSERT_EQ(rows("PRAGMA auto_vacuum"), 0);
  const std::string path = dir.file("s.db");
  constexpr int kRows = 2000;
  std::vector<std::uintmax_t> sizes;
  int n = 0;
  for (int cycle = 1; cycle <= 12; ++cycle) {
    const std::int64_t at = 10000 * cycle;
    ASSERT_TRUE(store->begin().is_ok());
    for (int i = 0; i < kRows; ++i) {
      ASSERT_TRUE(store->journal().apply(delivery_at(1 + i % 50, at, ++n, 600)).is_ok());
    }
    ASSERT_TRUE(store->commit().is_ok());
    prune_all(HistoryTable::kWebhookEvents, at, kMaxPruneBatch);  // all but this cycle's
    ASSERT_EQ(rows("SELECT count(*) FROM webhook_events"), kRows);
    store->db().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    sizes.push_back(std::filesystem::file_size(path));
  }
  EXPECT_GT(rows("PRAGMA freelist_count"), 0);
  std::string trace;
  for (auto s : sizes) trace += std::to_string(s) + " ";
  EXPECT_LE(static_cast<double>(sizes[11]), static_cast<double>(sizes[2]) * 1.05) << trace;
  // Without pruning the file would have grown by a cycle's rows each time.
  EXPECT_GT(sizes[1], sizes[0]) << trace;
}

TEST_F(RetentionTest, TheReportShowsFileSizeFreePagesAndTheOldestJournalRow) {
  ASSERT_TRUE(store->begin().is_ok());
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(store->journal().apply(delivery_at(1, 1000 + i, i, 2000)).is_ok());
  }
  ASSERT_TRUE(store->commit().is_ok());
  auto before = read_mirror_report(dir.file("s.db"), 5000);
  ASSERT_TRUE(before.is_ok()) << before.message();
  EXPECT_EQ(before->oldest_webhook_at, 1000);
  EXPECT_EQ(before->free_bytes, 0);

  prune(HistoryTable::kWebhookEvents, 1400);
  store->db().exec("PRAGMA wal_checkpoint(TRUNCATE)");
  auto after = read_mirror_report(dir.file("s.db"), 5000);
  ASSERT_TRUE(after.is_ok()) << after.message();
  EXPECT_EQ(after->oldest_webhook_at, 1400);
  EXPECT_GT(after->free_bytes, 400 * 2000 / 2);  // most of the deleted rows' pages
  EXPECT_EQ(after->file_bytes,
            static_cast<std::int64_t>(std::filesystem::file_size(dir.file("s.db"))));
  EXPECT_LT(after->free_bytes, after->file_bytes);
}

}  // namespace
}  // namespace runsync
