// Opening and migrating real database files in a temporary directory.
#include "storage/database.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <set>
#include <map>
#include <string>
#include <vector>

#include "storage/migrations.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;

TEST(Database, MigrationsCreateTheSpecSchema) {
  TempDir dir;
  auto db = open_database(dir.file("m.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok()) << db.message();
  SQLite::Database& d = *db.value();
  EXPECT_EQ(schema_version(d), latest_schema_version());
  EXPECT_EQ(d.execAndGet("PRAGMA journal_mode").getString(), "wal");
  EXPECT_EQ(d.execAndGet("PRAGMA synchronous").getInt(), 2);  // FULL
  const std::map<std::string, std::vector<std::string>> spec = {
      {"runs",
       {"run_id", "project_id", "project_code", "name", "description", "suite_id", "milestone_id",
        "assignedto_id", "plan_id", "plan_name", "config", "environment", "refs", "url",
        "created_on", "created_by", "completed_on", "state", "is_completed", "cases_count",
        "passed_count", "failed_count", "blocked_count", "untested_count", "retest_count",
        "skipped_count", "custom_status1_count", "custom_status2_count", "custom_status3_count",
        "custom_status4_count", "custom_status5_count", "custom_status6_count",
        "custom_status7_count", "duration_ms", "report_visible", "last_event_at",
        "last_polled_at", "updated_at", "change_seq"}},
      {"run_changes", {"seq", "run_id", "changed_at", "source", "changes"}},
      {"webhook_events",
       {"seq", "received_at", "delivery_key", "event_name", "project_code", "run_id", "event_ts",
        "body", "result"}},
      {"poll_cycles",
       {"id", "project_id", "kind", "started_at", "finished_at", "pages", "requests", "runs_seen",
        "runs_changed", "runs_deleted", "error"}},
  };
  for (const auto& [table, columns] : spec) {
    std::set<std::string> have;
    SQLite::Statement info(d, "SELECT name FROM pragma_table_info(?)");
    info.bind(1, table);
    while (info.executeStep()) have.insert(info.getColumn(0).getString());
    for (const auto& c : columns) EXPECT_TRUE(have.count(c)) << table << "." << c;
  }
}

// Migration 4 rebuilds webhook_events so that its duplicate check is the
// unique (event_ts, delivery_key) index: every row survives, and the same
// key with the same timestamp is still refused.
TEST(Database, JournalRebuiltWithItsRowsAndADuplicateCheckByTime) {
  TempDir dir;
  const std::string path = dir.file("v3.db");
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    for (const Migration& m : embedded_migrations()) {
      if (m.version <= 3) raw.exec(m.sql);
    }
    raw.exec("PRAGMA user_version = 3");
    raw.exec(
        "INSERT INTO webhook_events (seq, received_at, delivery_key, event_name, project_code, "
        "run_id, event_ts, body, result) VALUES "
        "(5, 10, 'sha256:a', 'run.started', 'ID', 1, 100, '{\"a\":1}', 'applied'), "
        "(9, 11, 'id:b', 'plan.created', NULL, NULL, 200, '{}', 'ignored')");
  }
  auto db = open_database(path, OpenOptions{});
  ASSERT_TRUE(db.is_ok()) << db.message();
  SQLite::Database& d = *db.value();
  EXPECT_GE(schema_version(d), 4);
  EXPECT_EQ(d.execAndGet("SELECT group_concat(seq || ':' || received_at || ':' || delivery_key || "
                         "':' || event_name || ':' || coalesce(project_code, '-') || ':' || "
                         "coalesce(run_id, '-') || ':' || event_ts || ':' || body || ':' || "
                         "result, ' ') FROM (SELECT * FROM webhook_events ORDER BY seq)")
                .getString(),
            "5:10:sha256:a:run.started:ID:1:100:{\"a\":1}:applied "
            "9:11:id:b:plan.created:-:-:200:{}:ignored");
  std::map<std::string, int> indexes;  // name -> unique
  SQLite::Statement list(d, "SELECT name, \"unique\" FROM pragma_index_list('webhook_events')");
  while (list.executeStep()) indexes[list.getColumn(0).getString()] = list.getColumn(1).getInt();
  EXPECT_EQ(indexes, (std::map<std::string, int>{{"webhook_events_by_received", 0},
                                                 {"webhook_events_dedupe", 1}}));
  const char* insert =
      "INSERT INTO webhook_events (received_at, delivery_key, event_name, event_ts, body, result) "
      "VALUES (12, 'sha256:a', 'run.started', ?, '{}', 'applied')";
  SQLite::Statement same_time(d, insert);
  same_time.bind(1, 100);
  EXPECT_THROW(same_time.exec(), SQLite::Exception);
  SQLite::Statement other_time(d, insert);
  other_time.bind(1, 101);
  EXPECT_EQ(other_time.exec(), 1);
  EXPECT_EQ(d.execAndGet("PRAGMA integrity_check").getString(), "ok");
}

TEST(Database, ReopeningAppliesNothingTwice) {
  TempDir dir;
  { ASSERT_TRUE(open_database(dir.file("m.db"), OpenOptions{}).is_ok()); }
  auto db = open_database(dir.file("m.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok());
  int applied = -1;
  ASSERT_TRUE(migrate(*db.value(), &applied).is_ok());
  EXPECT_EQ(applied, 0);
}

TEST(Database, RefusesADatabaseNewerThanTheBinary) {
  TempDir dir;
  {
    SQLite::Database raw(dir.file("new.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("PRAGMA user_version = 999");
  }
  auto db = open_database(dir.file("new.db"), OpenOptions{});
  ASSERT_FALSE(db.is_ok());
  EXPECT_NE(db.message().find("newer"), std::string::npos) << db.message();
  // And nothing was changed.
  SQLite::Database raw(dir.file("new.db"), SQLite::OPEN_READONLY);
  EXPECT_EQ(raw.execAndGet("PRAGMA user_version").getInt(), 999);
  EXPECT_FALSE(raw.tableExists("runs"));
}

TEST(Database, UnwritablePathIsAClearError) {
  auto db = open_database("/nonexistent-dir/x/runsync.db", OpenOptions{});
  ASSERT_FALSE(db.is_ok());
  EXPECT_NE(db.message().find("/nonexistent-dir/x/runsync.db"), std::string::npos);
}

}  // namespace
}  // namespace runsync
