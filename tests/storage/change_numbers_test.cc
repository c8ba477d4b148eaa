// The numbers readers page by (run_changes.seq = runs.change_seq, and
// webhook_events.seq) are never issued twice, also by a copy restored from
// a replica that lacks the newest rows (SPEC §6, docs/schema.md).
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include "storage/backup.h"
#include "support/fake_clock.h"
#include "support/storage_fixtures.h"

namespace runsync::testing {
namespace {

class ChangeNumbersTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open(const std::string& path) {
    OpenOptions options;
    options.clock = &clock;
    auto store = Store::open(path, options);
    EXPECT_TRUE(store.is_ok()) << store.message();
    return std::move(store).value();
  }

  // One webhook that changes run `run`: a journal row and a change-log row.
  static void change(Store& store, int run, int version) {
    ASSERT_TRUE(store.begin().is_ok());
    auto applied = store.journal().apply(delivery(completed(run, 1000 + version, version)));
    ASSERT_TRUE(applied.is_ok()) << applied.message();
    ASSERT_EQ(applied.value(), WebhookResult::kApplied);
    ASSERT_TRUE(store.commit().is_ok());
  }

  static std::int64_t highest(Store& store, const char* table) {
    return count(store.db(), std::string("SELECT max(seq) FROM ") + table);
  }

  TempDir dir;
  FakeClock clock;
};

TEST_F(ChangeNumbersTest, ARestoredCopyIssuesNoNumberTheLostFilePublished) {
  auto primary = open(dir.file("primary.db"));
  for (int v = 1; v <= 3; ++v) change(*primary, 7, v);
  // The replica's position: what a restore gets back.
  ASSERT_TRUE(backup_database(dir.file("primary.db"), dir.file("replica.db")).is_ok());
  // The tail the replica never received, all within the same millisecond:
  // readers saw these numbers, then the machine was lost.
  for (int v = 4; v <= 8; ++v) change(*primary, 7, v);
  const std::int64_t published_change = highest(*primary, "run_changes");
  const std::int64_t published_event = highest(*primary, "webhook_events");
  EXPECT_EQ(count(primary->db(), "SELECT change_seq FROM runs WHERE run_id = 7"), published_change);
  primary.reset();

  clock.advance(std::chrono::milliseconds(1));  // the restore happens later than the loss
  auto restored = open(dir.file("replica.db"));
  ASSERT_LT(highest(*restored, "run_changes"), published_change);
  change(*restored, 7, 9);
  change(*restored, 8, 1);
  EXPECT_EQ(count(restored->db(), "SELECT count(*) FROM run_changes WHERE seq <= " +
                                      std::to_string(published_change) + " AND seq > " +
                                      std::to_string(published_change - 5)),
            0);
  EXPECT_GT(count(restored->db(), "SELECT min(change_seq) FROM runs WHERE run_id IN (7, 8)"),
            published_change);
  EXPECT_GT(count(restored->db(), "SELECT min(seq) FROM webhook_events WHERE event_ts >= 1009"),
            published_event);
}

TEST_F(ChangeNumbersTest, NumbersRiseByOneWithinAMillisecondAndWhenTheClockGoesBack) {
  auto store = open(dir.file("s.db"));
  change(*store, 1, 1);
  const std::int64_t first = highest(*store, "run_changes");
  EXPECT_EQ(first, clock.unix_ms() * kNumbersPerMillisecond);
  change(*store, 1, 2);
  EXPECT_EQ(highest(*store, "run_changes"), first + 1);
  clock.set_unix_ms(clock.unix_ms() - 60'000);  // a clock stepped back
  change(*store, 1, 3);
  EXPECT_EQ(highest(*store, "run_changes"), first + 2);
  EXPECT_EQ(highest(*store, "webhook_events"), highest(*store, "run_changes"));
  clock.set_unix_ms(clock.unix_ms() + 120'000);
  change(*store, 1, 4);
  EXPECT_EQ(highest(*store, "run_changes"), clock.unix_ms() * kNumbersPerMillisecond);
}

TEST_F(ChangeNumbersTest, NewRunsOfABatchFollowTheClockToo) {
  auto store = open(dir.file("s.db"));
  std::vector<Observation> batch;
  for (int id = 1; id <= 40; ++id) batch.push_back(polled(id, 1000, 1));
  ASSERT_TRUE(store->begin().is_ok());
  auto applied = store->runs().apply_all(batch, 1000);
  ASSERT_TRUE(applied.is_ok()) << applied.message();
  ASSERT_TRUE(store->commit().is_ok());
  const std::int64_t floor = clock.unix_ms() * kNumbersPerMillisecond;
  EXPECT_EQ(count(store->db(), "SELECT min(change_seq) FROM runs"), floor);
  EXPECT_EQ(count(store->db(), "SELECT max(change_seq) FROM runs"), floor + 39);
  EXPECT_EQ(count(store->db(), "SELECT count(*) FROM runs JOIN run_changes ON seq = change_seq"),
            40);
}

}  // namespace
}  // namespace runsync::testing
