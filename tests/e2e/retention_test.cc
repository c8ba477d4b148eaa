// End-to-end: `runsync serve` prunes the journal on its own, and `runsync
// status` shows what is left.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "support/config_builder.h"
#include "support/events.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using runsync::testing::ChildProcess;
using runsync::testing::ConfigBuilder;
using runsync::testing::run_command;
using runsync::testing::TempDir;
using runsync::testing::TestHttpClient;
using runsync::testing::wait_for_listen_port;
using runsync::testing::wait_until;

std::string event(int run) { return testing::webhook_body("run.started", run, 1700000000); }

TEST(RetentionE2E, ServePrunesTheJournalInTheBackground) {
  TempDir dir;
  const std::string db = dir.file("mirror.db");
  const std::string config = ConfigBuilder(db)
                                 .set("retention", "webhook_events", "\"1s\"")
                                 .set("retention", "interval", "\"100ms\"")
                                 .write(dir);
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", config}, dir.file("serve.log"));
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  for (int run = 1; run <= 3; ++run) ASSERT_EQ(client.post("/webhook", event(run)).status, 200);

  auto journal_rows = [&] {
    SQLite::Database read(db, SQLite::OPEN_READONLY);
    return read.execAndGet("SELECT count(*) FROM webhook_events").getInt64();
  };
  // All but the newest delivery go once they are past the 1 s window.
  ASSERT_TRUE(wait_until([&] { return journal_rows() == 1; }, 20s)) << daemon.log();
  EXPECT_TRUE(wait_until(
      [&] { return daemon.log().find("retention: deleted ") != std::string::npos; }, 10s))
      << daemon.log();
  EXPECT_NE(client.get("/metrics")
                .body.find("runsync_retention_pruned_rows_total{table=\"webhook_events\"} 2"),
            std::string::npos);
  {
    SQLite::Database read(db, SQLite::OPEN_READONLY);
    EXPECT_EQ(read.execAndGet("SELECT count(*) FROM runs").getInt64(), 3);
  }

  auto status = run_command({RUNSYNC_BINARY, "status", "--json", "--config", config});
  const auto j = nlohmann::json::parse(status.out);
  EXPECT_GT(j.at("database_file_bytes").get<std::int64_t>(), 0);
  EXPECT_GE(j.at("database_free_bytes").get<std::int64_t>(), 0);
  EXPECT_GE(j.at("wal_file_bytes").get<std::int64_t>(), 0);
  EXPECT_TRUE(j.at("oldest_webhook_at").is_number_integer()) << status.out;
  auto text = run_command({RUNSYNC_BINARY, "status", "--config", config});
  EXPECT_NE(text.out.find("database file: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("; WAL file: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("oldest webhook kept: "), std::string::npos) << text.out;

  daemon.signal(SIGTERM);
  auto exited = daemon.wait(10s);
  ASSERT_TRUE(exited.has_value());
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << daemon.log();
}

// SIGHUP reloads [retention]: a shorter interval and a window take effect
// without a restart (the next round comes at once, not an hour later); a
// bad value is refused, logged, and the running settings stay.
TEST(RetentionE2E, SighupReloadsTheIntervalAndTheWindows) {
  TempDir dir;
  const std::string db = dir.file("mirror.db");
  auto config_with = [&](const std::string& retention) {
    return ConfigBuilder(db).lines("retention", retention).write(dir);
  };
  const std::string config = config_with("webhook_events = \"0\"\ninterval = \"1h\"\n");
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", config}, dir.file("serve.log"));
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  auto journal_rows = [&] {
    SQLite::Database read(db, SQLite::OPEN_READONLY);
    return read.execAndGet("SELECT count(*) FROM webhook_events").getInt64();
  };
  for (int run = 1; run <= 3; ++run) ASSERT_EQ(client.post("/webhook", event(run)).status, 200);
  ASSERT_EQ(journal_rows(), 3);

  config_with("webhook_events = \"1s\"\ninterval = \"100ms\"\n");
  daemon.signal(SIGHUP);
  EXPECT_TRUE(wait_until(
      [&] {
        return daemon.log().find("reloaded retention: every 100ms, keeping webhook_events 1s") !=
               std::string::npos;
      },
      10s))
      << daemon.log();
  // All but the newest delivery go once they are past the 1 s window.
  EXPECT_TRUE(wait_until([&] { return journal_rows() == 1; }, 20s)) << daemon.log();

  config_with("webhook_events = \"1s\"\ninterval = \"5ms\"\n");
  daemon.signal(SIGHUP);
  EXPECT_TRUE(wait_until(
      [&] {
        return daemon.log().find("reload failed: ") != std::string::npos &&
               daemon.log().find("interval") != std::string::npos &&
               daemon.log().find("keeping the previous configuration") != std::string::npos;
      },
      10s))
      << daemon.log();
  for (int run = 4; run <= 5; ++run) ASSERT_EQ(client.post("/webhook", event(run)).status, 200);
  EXPECT_TRUE(wait_until([&] { return journal_rows() == 1; }, 20s)) << daemon.log();

  daemon.signal(SIGTERM);
  auto exited = daemon.wait(10s);
  ASSERT_TRUE(exited.has_value());
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << daemon.log();
}

}  // namespace
}  // namespace runsync
