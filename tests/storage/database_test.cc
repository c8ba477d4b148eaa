// Opening and migrating real database files in a temporary directory.
#include "storage/database.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <set>
#include <map>
#include <string>
#include <vector>

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
