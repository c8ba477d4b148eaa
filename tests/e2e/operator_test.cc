// End-to-end: what an operator does with the installed binary in its first
// week — read-only commands on the host, reloading the API key, `status`
// around a poll, /metrics right after a restart, backups under load.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "daemon/http/base64.h"
#include "storage/store.h"
#include "support/config_builder.h"
#include "support/events.h"
#include "support/fake_testrail.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using runsync::test::FakeTestRail;
using runsync::testing::ChildProcess;
using runsync::testing::CommandResult;
using runsync::testing::ConfigBuilder;
using runsync::testing::run_command;
using runsync::testing::TempDir;
using runsync::testing::TestHttpClient;
using runsync::testing::wait_for_listen_port;
using runsync::testing::wait_until;

std::string event_body(int thread, int seq) {
  return testing::webhook_body("run.completed", thread * 1000 + seq % 50, 1700000000 + seq,
                               R"(,"cases":100,"passed":)" + std::to_string(seq % 100) +
                                   R"(,"failed":1,"blocked":0,"duration":)" + std::to_string(seq),
                               R"(,"team_member_id":)" + std::to_string(thread * 1000000 + seq));
}

int lines_containing(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

class OperatorTest : public ::testing::Test {
 protected:
  // A config for the fake (or `url`), key in a file unless `key_file` is empty.
  std::string write_config(const std::string& url, const std::string& key_file,
                           const std::string& name = "runsync.toml") {
    return ConfigBuilder(dir_.file("mirror.db"))
        .testrail(url, key_file)
        .set("testrail", "poll_interval", "\"1s\"")
        .write(dir_, name);
  }

  std::unique_ptr<ChildProcess> start(const std::string& config) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{RUNSYNC_BINARY, "serve", "--config", config},
        dir_.file("serve" + std::to_string(++starts_) + ".log"));
  }

  static void stop(ChildProcess& daemon) {
    daemon.signal(SIGTERM);
    auto status = daemon.wait(10s);
    ASSERT_TRUE(status.has_value()) << daemon.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon.log();
  }

  CommandResult status(const std::string& config, bool json) {
    std::vector<std::string> args{RUNSYNC_BINARY, "status", "--config", config};
    if (json) args.push_back("--json");
    CommandResult r = run_command(args);
    std::cout << "$ runsync status" << (json ? " --json" : "") << "  (exit " << r.exit_code
              << ")\n"
              << r.out << r.err;
    return r;
  }

  TempDir dir_;
  int starts_ = 0;
};

TEST_F(OperatorTest, CommandsThatDoNotCallTheApiWorkWithoutTheKey) {
  const std::string config = write_config("http://127.0.0.1:9", "");
  auto check = run_command({RUNSYNC_BINARY, "check-config", "--config", config});
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("# api_key: none found here"), std::string::npos) << check.out;

  auto migrate = run_command({RUNSYNC_BINARY, "migrate", "--config", config});
  EXPECT_EQ(migrate.exit_code, 0) << migrate.err;

  auto st = run_command({RUNSYNC_BINARY, "status", "--config", config});
  EXPECT_EQ(st.exit_code, 1) << st.out << st.err;  // never polled: unhealthy, but it answers
  EXPECT_NE(st.out.find("project 1 has never been polled"), std::string::npos) << st.out;
  EXPECT_EQ(st.err.find("API key"), std::string::npos) << st.err;

  auto backup = run_command({RUNSYNC_BINARY, "backup", "--config", config, dir_.file("b.db")});
  EXPECT_EQ(backup.exit_code, 0) << backup.err;

  auto queued = run_command({RUNSYNC_BINARY, "run", "close", "5", "--config", config});
  EXPECT_EQ(queued.exit_code, 0) << queued.err;

  // The commands that call the API still insist.
  for (const char* command : {"serve", "sync"}) {
    auto r = run_command({RUNSYNC_BINARY, command, "--config", config});
    EXPECT_EQ(r.exit_code, 2) << command;
    EXPECT_NE(r.err.find("there is no API key"), std::string::npos) << command << ": " << r.err;
  }

  // Without --config, $RUNSYNC_CONFIG names the file.
  auto named = run_command({RUNSYNC_BINARY, "check-config"}, {"RUNSYNC_CONFIG=" + config});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  EXPECT_NE(named.out.find("loaded from " + config), std::string::npos) << named.out;
  auto missing =
      run_command({RUNSYNC_BINARY, "check-config"}, {"RUNSYNC_CONFIG=" + dir_.file("none.toml")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find(dir_.file("none.toml")), std::string::npos) << missing.err;
}

TEST_F(OperatorTest, SighupReloadsTheApiKeyForEveryLaterRequest) {
  FakeTestRail fake;
  fake.add_project(1);
  fake.add_run({{"project_id", 1}, {"name", "Nightly"}});
  const std::string key_file = dir_.write("api-key", "fake-api-key\n");
  auto daemon = start(write_config(fake.base_url(), key_file));
  ASSERT_NE(wait_for_listen_port(*daemon), 0) << daemon->log();
  const std::string old_auth = "Basic " + base64_encode("ci@example.com:fake-api-key");
  const std::string new_auth = "Basic " + base64_encode("ci@example.com:rotated-key");
  ASSERT_TRUE(fake.wait_for_requests(1, 20s)) << daemon->log();
  EXPECT_EQ(fake.requests().front().authorization, old_auth);

  dir_.write("api-key", "rotated-key\n");
  const std::size_t before = fake.request_count();  // all sent with the old key
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return daemon->log().find("reloaded secrets") != std::string::npos; }))
      << daemon->log();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto requests = fake.requests();
        for (std::size_t i = before; i < requests.size(); ++i) {
          if (requests[i].authorization == new_auth) return true;
        }
        return false;
      },
      20s))
      << daemon->log();
  // From the first request with the new key on, no request carries the old one.
  const auto requests = fake.requests();
  std::size_t first_new = before;
  while (requests[first_new].authorization != new_auth) ++first_new;
  for (std::size_t i = first_new; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].authorization, new_auth) << requests[i].uri;
  }
  stop(*daemon);
}

TEST_F(OperatorTest, StatusDuringAnInterruptedAndAFailedPoll) {
  FakeTestRail fake;
  fake.add_project(1);
  fake.add_run({{"project_id", 1}, {"name", "Nightly"}});
  const std::string config = write_config(fake.base_url(), dir_.write("api-key", "fake-api-key"));

  // During a poll: the first listing hangs while status looks.
  fake.delay_next(60s, "get_runs");
  auto daemon = start(config);
  ASSERT_NE(wait_for_listen_port(*daemon), 0) << daemon->log();
  ASSERT_TRUE(fake.wait_for_requests(1, 20s));
  auto running = status(config, false);
  EXPECT_EQ(running.exit_code, 1);
  EXPECT_NE(running.out.find("poll started "), std::string::npos) << running.out;
  EXPECT_NE(running.out.find(": running; last success: never"), std::string::npos) << running.out;
  EXPECT_EQ(running.out.find(" ok"), std::string::npos) << running.out;
  auto running_json = status(config, true);
  auto j = nlohmann::json::parse(running_json.out);
  EXPECT_EQ(j["polls"][0]["state"], "running");
  EXPECT_EQ(j["polls"][0]["ok"], false);
  EXPECT_TRUE(j["polls"][0]["started_at_iso"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(j["healthy"], false);

  // A clean stop mid-poll: not a failure, and status says interrupted.
  stop(*daemon);
  EXPECT_NE(daemon->log().find("stopped by shutdown"), std::string::npos) << daemon->log();
  EXPECT_EQ(daemon->log().find("FAILED"), std::string::npos) << daemon->log();
  auto interrupted = status(config, false);
  EXPECT_EQ(interrupted.exit_code, 1);
  EXPECT_NE(interrupted.out.find("interrupted (runsync stopped before it finished)"),
            std::string::npos)
      << interrupted.out;
  EXPECT_NE(interrupted.out.find("project 1 has never been polled successfully"),
            std::string::npos)
      << interrupted.out;
  auto interrupted_json = status(config, true);
  EXPECT_EQ(nlohmann::json::parse(interrupted_json.out)["polls"][0]["state"], "interrupted");

  // One retry is one line saying when; `sync` promises no next attempt.
  fake.fail_next(500, 1, "", "get_runs");
  auto ok = run_command({RUNSYNC_BINARY, "sync", "--config", config});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(lines_containing(ok.err, "get_runs"), 1) << ok.err;
  EXPECT_EQ(lines_containing(ok.err, "attempt 1 got HTTP 500; retrying in "), 1) << ok.err;
  fake.drop_next("get_runs");  // an attempt that gets no answer at all
  auto dropped = run_command({RUNSYNC_BINARY, "sync", "--config", config});
  EXPECT_EQ(dropped.exit_code, 0) << dropped.err;
  EXPECT_EQ(lines_containing(dropped.err, "get_runs"), 1) << dropped.err;
  EXPECT_EQ(lines_containing(dropped.err, "attempt 1 got no answer ("), 1) << dropped.err;
  EXPECT_EQ(dropped.err.find("(transient)"), std::string::npos) << dropped.err;
  auto healthy = status(config, false);
  EXPECT_EQ(healthy.exit_code, 0);
  EXPECT_NE(healthy.out.find(": ok, finished 20"), std::string::npos) << healthy.out;

  // A failed poll.
  fake.fail_next(401, 1, "", "get_runs");
  auto failed = run_command({RUNSYNC_BINARY, "sync", "--config", config});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find("FAILED, configuration error: get_runs: HTTP 401: "),
            std::string::npos)
      << failed.err;
  EXPECT_EQ(failed.err.find("next attempt"), std::string::npos) << failed.err;
  EXPECT_EQ(failed.err.find("(config)"), std::string::npos) << failed.err;
  auto failed_text = status(config, false);
  EXPECT_EQ(failed_text.exit_code, 1);
  EXPECT_NE(failed_text.out.find("FAILED: get_runs: HTTP 401: "), std::string::npos)
      << failed_text.out;
  EXPECT_NE(failed_text.out.find("last poll failed"), std::string::npos) << failed_text.out;
  auto failed_json = status(config, true);
  auto f = nlohmann::json::parse(failed_json.out);
  EXPECT_EQ(f["polls"][0]["state"], "failed");
  EXPECT_FALSE(f["polls"][0]["last_success_at_iso"].is_null());
}

TEST_F(OperatorTest, MetricsAreCompleteFromTheStart) {
  {
    auto store = Store::open(dir_.file("mirror.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    ASSERT_TRUE(store.value()->begin().is_ok());
    auto id = store.value()->poll_cycles().begin(1, PollKind::kFull, 1234500);
    ASSERT_TRUE(id.is_ok());
    ASSERT_TRUE(
        store.value()->poll_cycles().finish(*id, PollCycleStats{}, std::nullopt, 1234567).is_ok());
    ASSERT_TRUE(store.value()->commit().is_ok());
  }
  FakeTestRail fake;
  fake.add_project(1);
  fake.delay_next(60s, "get_runs");  // no poll finishes while we look
  auto daemon =
      start(write_config(fake.base_url(), dir_.write("api-key", "fake-api-key")));
  const unsigned short port = wait_for_listen_port(*daemon);
  ASSERT_NE(port, 0) << daemon->log();
  TestHttpClient client(port);
  const std::string text = client.get("/metrics").body;
  for (const char* line : {
           "runsync_last_successful_poll_timestamp_seconds{project=\"1\"} 1234567\n",
           "runsync_poll_cycles_total{project=\"1\",kind=\"active\",outcome=\"failed\"} 0\n",
           "runsync_poll_cycles_total{project=\"1\",kind=\"full\",outcome=\"config_error\"} 0\n",
           "runsync_poll_duration_seconds_bucket{kind=\"full\",le=\"600\"} 0\n",
           "runsync_api_waits_total{reason=\"rate_limit\"} 0\n",
           "runsync_outbox_commands_total{command=\"close_run\",outcome=\"done\"} 0\n",
           "runsync_runs{state=\"active\"} 0\n",
           "runsync_outbox_pending 0\n",
           "runsync_outbox_oldest_pending_age_seconds 0\n",
           "runsync_last_webhook_timestamp_seconds 0\n",
           "# TYPE process_cpu_seconds_total counter\n",
           "process_resident_memory_bytes ",
           "process_open_fds ",
           "process_start_time_seconds ",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  ASSERT_EQ(client.post("/webhook", event_body(1, 1)).status, 200);
  ASSERT_EQ(run_command({RUNSYNC_BINARY, "run", "close", "7", "--config",
                         dir_.file("runsync.toml")})
                .exit_code,
            0);
  const std::string after = client.get("/metrics").body;
  EXPECT_NE(after.find("runsync_runs{state=\"completed\"} 1\n"), std::string::npos) << after;
  EXPECT_NE(after.find("runsync_outbox_pending 1\n"), std::string::npos) << after;
  EXPECT_EQ(after.find("runsync_last_webhook_timestamp_seconds 0\n"), std::string::npos);
  stop(*daemon);
}

TEST_F(OperatorTest, BackupUnderLoadHoldsEveryAcknowledgedDelivery) {
  const std::string config = dir_.write(
      "plain.toml", "[storage]\npath = \"" + dir_.file("mirror.db") +
                        "\"\n\n[webhook]\nlisten = \"127.0.0.1:0\"\n\n[[project]]\nid = 1\n"
                        "code = \"ID\"\n");
  auto daemon = start(config);
  const unsigned short port = wait_for_listen_port(*daemon);
  ASSERT_NE(port, 0) << daemon->log();

  std::atomic<bool> halt{false};
  std::mutex mu;
  std::vector<std::string> acked;
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&, t] {
      TestHttpClient c(port);
      for (int i = 0; !halt && i < 1'000'000; ++i) {
        const std::string body = event_body(t, i);
        const int code = c.post("/webhook", body).status;
        if (code == 0) return;
        if (code == 200) {
          std::lock_guard lock(mu);
          acked.push_back(body);
        }
      }
    });
  }
  auto acked_count = [&] {
    std::lock_guard lock(mu);
    return acked.size();
  };
  ASSERT_TRUE(wait_until([&] { return acked_count() >= 500; }, 60s));
  std::vector<std::string> before;
  {
    std::lock_guard lock(mu);
    before = acked;
  }
  const std::string copy = dir_.file("copy.db");
  auto backup = run_command({RUNSYNC_BINARY, "backup", "--config", config, copy});
  const bool serving = !daemon->exited();
  halt = true;
  for (auto& t : posters) t.join();
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_NE(backup.out.find("integrity ok"), std::string::npos) << backup.out;
  EXPECT_TRUE(serving);
  {
    SQLite::Database db(copy, SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
    SQLite::Statement find(db, "SELECT count(*) FROM webhook_events WHERE body = ?");
    int missing = 0;
    for (const auto& body : before) {
      find.reset();
      find.bind(1, body);
      find.executeStep();
      if (find.getColumn(0).getInt() != 1) ++missing;
    }
    EXPECT_EQ(missing, 0) << "of " << before.size() << " acknowledged before the backup";
  }
  stop(*daemon);

  // Stopped: the copy holds everything.
  const std::string cold = dir_.file("cold.db");
  auto stopped = run_command({RUNSYNC_BINARY, "backup", "--config", config, cold});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  {
    SQLite::Database db(cold, SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM webhook_events").getInt64(),
              static_cast<std::int64_t>(acked.size()));
  }

  // Never over an existing file; one clear line when it cannot be written.
  const std::string existing = dir_.write("existing.db", "keep me");
  auto refused = run_command({RUNSYNC_BINARY, "backup", "--config", config, existing});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_EQ(refused.err, "runsync: backup: " + existing + " already exists; not overwritten\n");
  std::ifstream in(existing);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "keep me");
  const std::string nowhere = dir_.file("missing-dir/copy.db");
  auto unwritable = run_command({RUNSYNC_BINARY, "backup", "--config", config, nowhere});
  EXPECT_NE(unwritable.exit_code, 0);
  EXPECT_EQ(lines_containing(unwritable.err, ""), 1) << unwritable.err;
  EXPECT_NE(unwritable.err.find("cannot create " + nowhere), std::string::npos) << unwritable.err;
}

}  // namespace
}  // namespace runsync
