// End-to-end: /readyz and `runsync status` tell whether the database takes
// writes (SPEC §4), and only that: TestRail's health is not part of it.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

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

std::string deleted_event(int run) { return testing::webhook_body("run.deleted", run, 1650540100); }

class ReadinessTest : public ::testing::Test {
 protected:
  // `testrail`: extra lines for a [testrail] section, none when empty.
  // With `testrail`, the lines of a [testrail] table.
  std::string write_config(const std::string& testrail = "") {
    ConfigBuilder config(dir_.file("mirror.db"));
    if (!testrail.empty()) config.lines("testrail", testrail);
    return config.write(dir_);
  }

  std::int64_t count(const std::string& sql) {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }

  TempDir dir_;
};

// A full disk, as the daemon meets it: every write to a file fails (here a
// file-size limit of 0 set from outside). Webhooks get 500 and /readyz 503;
// once writes succeed again both recover, without a restart.
TEST_F(ReadinessTest, ReadyzIs503WhileWritesFailAnd200OnceTheySucceed) {
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", write_config()},
                      dir_.file("serve.log"));
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  ASSERT_TRUE(wait_until([&] { return client.get("/readyz").status == 200; }, 20s)) << daemon.log();

  rlimit unlimited{};
  ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_FSIZE, nullptr, &unlimited), 0);
  rlimit full = unlimited;
  full.rlim_cur = 0;
  ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_FSIZE, &full, nullptr), 0);
  EXPECT_EQ(client.post("/webhook", deleted_event(1)).status, 500);
  const auto refused = client.get("/readyz");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("database is not writable"), std::string::npos) << refused.body;
  EXPECT_FALSE(daemon.exited()) << "a failed write must not kill the daemon";

  ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_FSIZE, &unlimited, nullptr), 0);
  EXPECT_TRUE(wait_until([&] { return client.get("/readyz").status == 200; }, 20s));
  EXPECT_EQ(client.post("/webhook", deleted_event(2)).status, 200);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 1);
}

// A write the disk refuses reaches `runsync status` (exit 1, with the
// error) and the metrics, and both clear once a write succeeds again. The
// files may not grow past 8 KiB from outside: the WAL's next frames and the
// database's pages fail; the health file (4 KiB) is rewritten in place.
TEST_F(ReadinessTest, StatusAndMetricsSeeAFailedWrite) {
  const std::string cfg = write_config();
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", cfg}, dir_.file("serve.log"));
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  ASSERT_EQ(client.post("/webhook", deleted_event(1)).status, 200);
  auto healthy = run_command({RUNSYNC_BINARY, "status", "--config", cfg});
  EXPECT_EQ(healthy.exit_code, 0) << healthy.out << healthy.err;
  EXPECT_NE(healthy.out.find("database writes: no failure reported"), std::string::npos)
      << healthy.out;
  EXPECT_NE(client.get("/metrics").body.find("runsync_database_writes_failing 0"),
            std::string::npos);

  rlimit unlimited{};
  ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_FSIZE, nullptr, &unlimited), 0);
  rlimit capped = unlimited;
  capped.rlim_cur = 8192;
  ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_FSIZE, &capped, nullptr), 0);
  EXPECT_EQ(client.post("/webhook", deleted_event(2)).status, 500);

  auto text = run_command({RUNSYNC_BINARY, "status", "--config", cfg});
  EXPECT_EQ(text.exit_code, 1) << text.out;
  EXPECT_NE(text.out.find("database writes: FAILING since "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("disk I/O error"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  - the database stopped taking writes since "), std::string::npos)
      << text.out;
  auto json = run_command({RUNSYNC_BINARY, "status", "--json", "--config", cfg});
  EXPECT_EQ(json.exit_code, 1) << json.out;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j.at("healthy"), false);
  ASSERT_TRUE(j.at("write_error").is_string()) << json.out;
  EXPECT_NE(j.at("write_error").get<std::string>().find("disk I/O error"), std::string::npos);
  EXPECT_TRUE(j.at("write_error_since").is_number_integer()) << json.out;
  const std::string metrics = client.get("/metrics").body;
  EXPECT_NE(metrics.find("runsync_database_writes_failing 1"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("runsync_database_write_failures_total 0"), std::string::npos);
  EXPECT_TRUE(wait_until([&] {
    return daemon.log().find("writes to the database fail: ") != std::string::npos;
  })) << daemon.log();

  ASSERT_EQ(::prlimit(daemon.pid(), RLIMIT_FSIZE, &unlimited, nullptr), 0);
  EXPECT_TRUE(
      wait_until([&] { return client.post("/webhook", deleted_event(3)).status == 200; }, 20s));
  auto recovered = run_command({RUNSYNC_BINARY, "status", "--json", "--config", cfg});
  EXPECT_EQ(recovered.exit_code, 0) << recovered.out;
  EXPECT_TRUE(nlohmann::json::parse(recovered.out).at("write_error").is_null()) << recovered.out;
  EXPECT_NE(client.get("/metrics").body.find("runsync_database_writes_failing 0"),
            std::string::npos);
}

// TestRail down: the poll fails, yet the daemon takes webhooks, so /readyz
// stays 200; `status` is the one to report the failed poll.
TEST_F(ReadinessTest, ReadyzDoesNotFollowTestRail) {
  const std::string cfg = write_config(
      "url = \"http://127.0.0.1:1\"\nuser = \"ci@example.com\"\nrequest_timeout = \"1s\"\n");
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", cfg}, dir_.file("serve.log"),
                      {"RUNSYNC_TESTRAIL_API_KEY=k"});
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  ASSERT_TRUE(wait_until(
      [&] { return count("SELECT count(*) FROM poll_cycles WHERE error IS NOT NULL") > 0; }, 60s))
      << daemon.log();
  EXPECT_EQ(client.get("/readyz").status, 200);
  EXPECT_EQ(client.post("/webhook", deleted_event(3)).status, 200);
  auto status =
      run_command({RUNSYNC_BINARY, "status", "--config", cfg}, {"RUNSYNC_TESTRAIL_API_KEY=k"});
  EXPECT_EQ(status.exit_code, 1) << status.out;  // unhealthy: the poll failed
}

// `status` says when the database cannot take writes: here a file left
// without write permission.
TEST_F(ReadinessTest, StatusNamesADatabaseThatCannotTakeWrites) {
  const std::string cfg = write_config();
  ASSERT_EQ(run_command({RUNSYNC_BINARY, "migrate", "--config", cfg}).exit_code, 0);
  auto healthy = run_command({RUNSYNC_BINARY, "status", "--config", cfg});
  EXPECT_EQ(healthy.exit_code, 0) << healthy.out << healthy.err;
  ASSERT_EQ(::chmod(dir_.file("mirror.db").c_str(), 0444), 0);
  auto status = run_command({RUNSYNC_BINARY, "status", "--config", cfg});
  EXPECT_EQ(status.exit_code, 1) << status.out;
  EXPECT_NE(status.out.find("the database cannot take writes"), std::string::npos) << status.out;
  auto json = run_command({RUNSYNC_BINARY, "status", "--json", "--config", cfg});
  EXPECT_EQ(json.exit_code, 1) << json.out;
  EXPECT_NE(json.out.find("\"healthy\": false"), std::string::npos) << json.out;
}

}  // namespace
}  // namespace runsync
