// What `runsync status`, /metrics and `runsync backup` read from a real
// database file: poll cycle states, the views' readable times, the copy.
#include "core/iso_time.h"
#include "storage/poller_mark.h"
#include "storage/report.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <fstream>

#include "storage/backup.h"
#include "storage/database.h"
#include "storage/store.h"
#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;  // TempDir and the storage fixtures

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(path_, OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    store_ = std::move(store).value();
  }

  // One cycle through the real Store; `finished_at` 0 leaves it unfinished.
  void cycle(std::int64_t project, std::int64_t started_at, std::int64_t finished_at,
             std::optional<std::string> error) {
    ASSERT_TRUE(store_->begin().is_ok());
    auto id = store_->poll_cycles().begin(project, PollKind::kActive, started_at);
    ASSERT_TRUE(id.is_ok()) << id.message();
    if (finished_at != 0) {
      ASSERT_TRUE(store_->poll_cycles().finish(*id, PollCycleStats{}, error, finished_at).is_ok());
    }
    ASSERT_TRUE(store_->commit().is_ok());
  }

  const PollSummary& poll_of(const MirrorReport& r, std::int64_t project) {
    for (const auto& p : r.polls) {
      if (p.project_id == project) return p;
    }
    ADD_FAILURE() << "no poll summary for project " << project;
    static PollSummary none;
    return none;
  }

  TempDir dir_;
  std::string path_ = dir_.file("mirror.db");
  std::unique_ptr<Store> store_;
};

TEST_F(ReportTest, UnfinishedCyclesAreRunningOrInterruptedNeverOk) {
  cycle(1, 1000, 1010, std::nullopt);
  cycle(2, 1000, 1010, std::nullopt);
  cycle(2, 2000, 2005, std::string("get_runs: HTTP 500: down"));
  cycle(3, 1000, 1010, std::nullopt);
  cycle(3, 3000, 0, std::nullopt);

  auto cut_off = read_mirror_report(path_, 4000);
  ASSERT_TRUE(cut_off.is_ok()) << cut_off.message();
  EXPECT_EQ(poll_of(*cut_off, 1).state, CycleState::kOk);
  EXPECT_EQ(poll_of(*cut_off, 2).state, CycleState::kFailed);
  EXPECT_EQ(poll_of(*cut_off, 2).last_success_at, 1010);
  EXPECT_EQ(poll_of(*cut_off, 3).state, CycleState::kInterrupted);
  EXPECT_EQ(poll_of(*cut_off, 3).last_success_at, 1010);

  auto mark = PollerMark::hold(path_);
  ASSERT_TRUE(mark.is_ok()) << mark.message();
  EXPECT_TRUE(poller_running(path_));
  auto running = read_mirror_report(path_, 4000);
  ASSERT_TRUE(running.is_ok()) << running.message();
  EXPECT_EQ(poll_of(*running, 3).state, CycleState::kRunning);
  EXPECT_EQ(poll_of(*running, 1).state, CycleState::kOk);

  mark.value().reset();
  EXPECT_FALSE(poller_running(path_));
  EXPECT_STREQ(cycle_state_name(CycleState::kInterrupted), "interrupted");
  EXPECT_STREQ(cycle_state_name(CycleState::kRunning), "running");
}

TEST(IsoUtc, FormatsUnixSecondsAsUtc) {
  EXPECT_EQ(iso_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(iso_utc(1796281190), "2026-12-03T06:59:50Z");
  EXPECT_EQ(iso_utc(1700000000), "2023-11-14T22:13:20Z");
}

TEST_F(ReportTest, ViewsAddIsoTimesAndKeepNull) {
  SQLite::Database db(path_, SQLite::OPEN_READWRITE);
  db.exec(
      "INSERT INTO runs (run_id, project_id, name, created_on, completed_on, updated_at, "
      "change_seq, state_at) VALUES (7, 1, 'Nightly', 1700000000, NULL, 1796281190, 1, 0)");
  db.exec(
      "INSERT INTO run_changes (seq, run_id, changed_at, source, changes) "
      "VALUES (1, 7, 1796281190, 'webhook', '{}')");
  SQLite::Statement run(db,
                        "SELECT run_id, name, created_on, created_on_iso, completed_on_iso, "
                        "updated_at_iso, last_event_at_iso, state_at_iso FROM v_runs");
  ASSERT_TRUE(run.executeStep());
  EXPECT_EQ(run.getColumn(0).getInt64(), 7);
  EXPECT_EQ(run.getColumn(1).getString(), "Nightly");
  EXPECT_EQ(run.getColumn(2).getInt64(), 1700000000);
  EXPECT_EQ(run.getColumn(3).getString(), "2023-11-14T22:13:20Z");
  EXPECT_TRUE(run.getColumn(4).isNull());
  EXPECT_EQ(run.getColumn(5).getString(), "2026-12-03T06:59:50Z");
  EXPECT_TRUE(run.getColumn(6).isNull());
  EXPECT_TRUE(run.getColumn(7).isNull());  // 0 means never observed

  SQLite::Statement change(db, "SELECT seq, run_id, source, changed_at_iso FROM v_run_changes");
  ASSERT_TRUE(change.executeStep());
  EXPECT_EQ(change.getColumn(1).getInt64(), 7);
  EXPECT_EQ(change.getColumn(2).getString(), "webhook");
  EXPECT_EQ(change.getColumn(3).getString(), "2026-12-03T06:59:50Z");

  // Every time column of the tables has its _iso twin in the view.
  for (const char* column : {"created_on", "completed_on", "last_event_at", "last_polled_at",
                             "updated_at", "details_at", "counts_at", "state_at", "report_at"}) {
    SQLite::Statement has(db, "SELECT count(*) FROM pragma_table_info('v_runs') WHERE name = ?");
    has.bind(1, std::string(column) + "_iso");
    ASSERT_TRUE(has.executeStep());
    EXPECT_EQ(has.getColumn(0).getInt(), 1) << column;
  }
}

TEST_F(ReportTest, GaugeReaderCountsRunsWebhooksAndPendingCommands) {
  SQLite::Database db(path_, SQLite::OPEN_READWRITE);
  db.exec("INSERT INTO runs (run_id, state, updated_at) VALUES (1, 'active', 1), (2, 'active', 1), "
          "(3, 'deleted', 1)");
  db.exec("INSERT INTO webhook_events (received_at, delivery_key, event_name, body, result) "
          "VALUES (500, 'a', 'run.started', '{}', 'applied'), (900, 'b', 'x', '{}', 'ignored')");
  db.exec("INSERT INTO outbox (command, target, created_at) VALUES ('close_run', 1, 300), "
          "('close_run', 2, 200)");
  db.exec("INSERT INTO outbox (command, target, state, created_at) VALUES ('close_run', 3, 'done', 100)");
  auto reader = MirrorGaugeReader::open(path_);
  ASSERT_TRUE(reader.is_ok()) << reader.message();
  auto g = reader.value()->read();
  ASSERT_TRUE(g.is_ok()) << g.message();
  EXPECT_EQ(g->runs_by_state["active"], 2);
  EXPECT_EQ(g->runs_by_state["deleted"], 1);
  EXPECT_EQ(g->last_webhook_at, 900);
  EXPECT_EQ(g->outbox_pending, 2);
  EXPECT_EQ(g->oldest_pending_at, 200);

  auto report = read_mirror_report(path_, 1000);
  ASSERT_TRUE(report.is_ok());
  EXPECT_EQ(report->oldest_pending_at, 200);
}

TEST_F(ReportTest, BackupIsACheckedCopyAndNeverOverwrites) {
  SQLite::Database db(path_, SQLite::OPEN_READWRITE);
  db.exec("INSERT INTO webhook_events (received_at, delivery_key, event_name, body, result) "
          "VALUES (500, 'a', 'run.started', '{\"x\":1}', 'applied')");
  const std::string copy = dir_.file("copy.db");
  auto info = backup_database(path_, copy);
  ASSERT_TRUE(info.is_ok()) << info.message();
  EXPECT_EQ(info->schema_version, latest_schema_version());
  EXPECT_GT(info->bytes, 0);
  {
    SQLite::Database c(copy, SQLite::OPEN_READONLY);
    EXPECT_EQ(c.execAndGet("PRAGMA integrity_check").getString(), "ok");
    EXPECT_EQ(c.execAndGet("SELECT body FROM webhook_events WHERE delivery_key = 'a'").getString(),
              "{\"x\":1}");
  }

  const std::string existing = dir_.write("existing.db", "precious");
  auto refused = backup_database(path_, existing);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.message(), existing + " already exists; not overwritten");
  std::ifstream in(existing);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "precious");

  auto nowhere = backup_database(path_, dir_.file("no/such/dir/copy.db"));
  ASSERT_FALSE(nowhere.is_ok());
  EXPECT_NE(nowhere.message().find("cannot create " + dir_.file("no/such/dir/copy.db")),
            std::string::npos)
      << nowhere.message();

  auto missing = backup_database(dir_.file("absent.db"), dir_.file("copy2.db"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("does not exist"), std::string::npos) << missing.message();
  EXPECT_FALSE(std::ifstream(dir_.file("copy2.db")).good());
}

TEST(Report, SummarisesTheMirror) {
  TempDir dir;
  {
    auto store = open_store(dir.file("rep.db"));
    ASSERT_TRUE(store->begin().is_ok());
    ASSERT_TRUE(store->journal().apply(delivery(completed(1, 10, 1), 5000)).is_ok());
    ASSERT_TRUE(store->journal().apply(delivery(completed(1, 5, 1), 5001)).is_ok());
    ASSERT_TRUE(store->commit().is_ok());
  }
  auto report = read_mirror_report(dir.file("rep.db"), 5100);
  ASSERT_TRUE(report.is_ok()) << report.message();
  EXPECT_EQ(report->runs_by_state.at("completed"), 1);
  EXPECT_EQ(report->last_webhook_at, 5001);
  EXPECT_EQ(report->webhook_results_last_hour.at("applied"), 1);
  EXPECT_EQ(report->webhook_results_last_hour.at("stale"), 1);
}

}  // namespace
}  // namespace runsync
