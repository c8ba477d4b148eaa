// End-to-end: the built binary against the fake TestRail server, and as a
// systemd service would run it (notify socket, signals, journald format).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <fstream>
#include <sstream>

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
using runsync::testing::ConfigBuilder;
using runsync::testing::run_command;
using runsync::testing::TempDir;
using runsync::testing::TestHttpClient;
using runsync::testing::wait_for_listen_port;
using runsync::testing::wait_until;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.add_project(1);
    for (int i = 0; i < 5; ++i) fake_.add_run({{"project_id", 1}, {"name", "run " + std::to_string(i)}});
    fake_.add_plan(1, "Plan", {{{"name", "in plan"}}});
  }

  std::string config(const std::string& key_file_line = "", const std::string& poll = "1s") {
    return ConfigBuilder(dir_.file("mirror.db"))
        .testrail(fake_.base_url())
        .lines("testrail", key_file_line)
        .set("testrail", "poll_interval", ConfigBuilder::quoted(poll))
        .set("testrail", "request_timeout", "\"5s\"")
        .write(dir_);
  }

  std::vector<std::string> key_env(const std::string& key = "fake-api-key") {
    return {"RUNSYNC_TESTRAIL_API_KEY=" + key};
  }

  std::int64_t count(const std::string& sql) {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }

  TempDir dir_;
  FakeTestRail fake_;
};

// A command whose request was refused (503, so not applied) and that waits
// to be retried when SIGTERM arrives ends pending: the outbox worker
// records that before the writer stops, rather than leaving it 'sending'
// for the next start to call unknown.
TEST_F(ServiceTest, ACommandRefusedThenStoppedStaysPending) {
  const std::string cfg = config();
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", cfg}, dir_.file("serve.log"), key_env());
  ASSERT_NE(wait_for_listen_port(daemon), 0) << daemon.log();
  fake_.fail_next(503, 5, "", "close_run");
  auto queued = run_command({RUNSYNC_BINARY, "run", "close", "1", "--config", cfg}, key_env());
  ASSERT_EQ(queued.exit_code, 0) << queued.err;
  ASSERT_TRUE(wait_until([&] { return fake_.count("close_run") >= 1; }, 20s)) << daemon.log();
  daemon.signal(SIGTERM);  // the client is backing off before its second attempt
  const auto status = daemon.wait(10s);
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon.log();
  SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT state FROM outbox WHERE id = 1").getString(), "pending")
      << daemon.log();
  EXPECT_EQ(fake_.count("close_run"), 1);
}

TEST_F(ServiceTest, SyncRunsOneCycleAndReportsFailure) {
  const std::string cfg = config();
  auto ok = run_command({RUNSYNC_BINARY, "sync", "--full", "--config", cfg}, key_env());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 6);
  EXPECT_NE(ok.err.find("poll project 1 (full): ok"), std::string::npos) << ok.err;

  auto bad = run_command({RUNSYNC_BINARY, "sync", "--config", cfg}, key_env("wrong"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("configuration error"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("wrong"), std::string::npos) << "the key leaked into the log";

  auto status = run_command({RUNSYNC_BINARY, "status", "--config", cfg}, key_env());
  EXPECT_EQ(status.exit_code, 1) << status.out;  // the last poll failed
  EXPECT_NE(status.out.find("UNHEALTHY"), std::string::npos) << status.out;

  auto no_url = run_command({RUNSYNC_BINARY, "sync"});
  EXPECT_EQ(no_url.exit_code, 2);
}

TEST_F(ServiceTest, ServePollsAndCarriesCommandsBack) {
  const std::string cfg = config();
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", cfg}, dir_.file("serve.log"), key_env());
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  ASSERT_TRUE(wait_until([&] { return client.get("/readyz").status == 200; }, 20s)) << daemon.log();
  // /readyz no longer waits for a poll (SPEC §4): wait for the first one.
  ASSERT_TRUE(wait_until([&] { return count("SELECT count(*) FROM poll_cycles WHERE error IS NULL "
                                            "AND finished_at IS NOT NULL") > 0; }, 20s))
      << daemon.log();
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 6);

  auto add = run_command({RUNSYNC_BINARY, "run", "add", "--config", cfg, "--project", "1", "--suite",
                          "2", "--name", "From CLI", "--case", "3", "--case", "4", "--wait"},
                         key_env());
  ASSERT_EQ(add.exit_code, 0) << add.err << daemon.log();
  const auto run = nlohmann::json::parse(add.out);
  EXPECT_EQ(run["name"], "From CLI");
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'From CLI'"), 1);

  auto bad = run_command({RUNSYNC_BINARY, "run", "update", "999999", "--config", cfg, "--name", "x",
                          "--wait", "--timeout", "20s"},
                         key_env());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("Field :run_id is not a valid test run."), std::string::npos) << bad.err;

  auto refused = run_command({RUNSYNC_BINARY, "run", "update", "5", "--config", cfg}, key_env());
  EXPECT_EQ(refused.exit_code, 2) << refused.err;  // nothing to update
  auto plan_run = run_command({RUNSYNC_BINARY, "run", "close", "6", "--config", cfg}, key_env());
  EXPECT_EQ(plan_run.exit_code, 2) << plan_run.err;  // run 6 is in a plan
  EXPECT_NE(plan_run.err.find("plan"), std::string::npos);
  EXPECT_EQ(count("SELECT count(*) FROM outbox"), 2);

  auto status = run_command({RUNSYNC_BINARY, "status", "--json", "--config", cfg}, key_env());
  EXPECT_EQ(status.exit_code, 0) << status.out;
  const auto s = nlohmann::json::parse(status.out);
  EXPECT_EQ(s["healthy"], true);
  EXPECT_EQ(s["outbox_by_state"]["done"], 1);
  EXPECT_EQ(s["outbox_by_state"]["failed"], 1);

  daemon.signal(SIGTERM);
  auto exit = daemon.wait(5s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(WEXITSTATUS(*exit), 0);
}

TEST_F(ServiceTest, MetricsAreValidPrometheusText) {
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", config()}, dir_.file("serve.log"), key_env());
  const unsigned short port = wait_for_listen_port(daemon);
  ASSERT_NE(port, 0) << daemon.log();
  TestHttpClient client(port);
  ASSERT_TRUE(wait_until([&] { return client.get("/readyz").status == 200; }, 20s));
  // /readyz no longer waits for a poll (SPEC §4): wait for the first one.
  ASSERT_TRUE(wait_until([&] { return count("SELECT count(*) FROM poll_cycles WHERE error IS NULL "
                                            "AND finished_at IS NOT NULL") > 0; }, 20s))
      << daemon.log();
  client.post("/webhook", testing::webhook_body("run.deleted", 1, 1));
  auto m = client.get("/metrics");
  ASSERT_EQ(m.status, 200);
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (-?[0-9.e+]+|\+Inf|NaN)$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  std::set<std::string> families;
  std::istringstream lines(m.body);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (std::regex_match(line, match, kType)) {
      const std::string name = match[1];
      // Ours carry the runsync_ prefix; the process_* family has its
      // standard Prometheus names.
      static const std::set<std::string> kProcess = {
          "process_cpu_seconds_total", "process_resident_memory_bytes",
          "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
          "process_start_time_seconds"};
      EXPECT_TRUE(name.rfind("runsync_", 0) == 0 || kProcess.count(name)) << name;
      if (match[2] == "counter") EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
      if (match[2] == "histogram") EXPECT_TRUE(name.size() > 8 && name.substr(name.size() - 8) == "_seconds") << name;
      families.insert(name);
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, match, kSample)) << "not a sample: " << line;
  }
  for (const char* f : {"runsync_webhook_events_total", "runsync_http_responses_total",
                        "runsync_poll_cycles_total", "runsync_api_requests_total",
                        "runsync_poll_duration_seconds", "runsync_db_commit_seconds",
                        "runsync_last_successful_poll_timestamp_seconds",
                        "runsync_ingest_queue_depth", "runsync_database_size_bytes",
                        "runsync_wal_size_bytes", "runsync_build_info", "runsync_runs",
                        "runsync_outbox_pending", "runsync_outbox_oldest_pending_age_seconds",
                        "runsync_last_webhook_timestamp_seconds", "process_cpu_seconds_total",
                        "process_resident_memory_bytes", "process_open_fds",
                        "process_start_time_seconds"}) {
    EXPECT_TRUE(families.count(f)) << f;
  }
  daemon.signal(SIGTERM);
  EXPECT_TRUE(daemon.wait(5s).has_value());
}

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval tv{0, 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { close(fd_); }
  // Collects messages until one contains `needle` or the timeout passes.
  bool wait_for(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
    return wait_until([&] {
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n > 0) messages_.emplace_back(buf, static_cast<std::size_t>(n));
      for (const auto& m : messages_) {
        if (m.find(needle) != std::string::npos) return true;
      }
      return false;
    }, timeout);
  }
  void clear() { messages_.clear(); }
  std::string all() const {
    std::string out;
    for (const auto& m : messages_) out += m + " | ";
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
};

TEST_F(ServiceTest, PlaysSystemd) {
  NotifySocket notify(dir_.file("notify.sock"));
  const std::string cfg = dir_.write("runsync.toml", "[storage]\npath = \"" + dir_.file("mirror.db") +
                                                         "\"\n[webhook]\nlisten = \"127.0.0.1:0\"\n"
                                                         "[log]\nlevel = \"info\"\n");
  const std::string log = dir_.file("journal.log");
  { std::ofstream(log).flush(); }
  struct stat st {};
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", cfg}, log,
                      {"NOTIFY_SOCKET=" + dir_.file("notify.sock"), "WATCHDOG_USEC=200000",
                       "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)});
  ASSERT_TRUE(notify.wait_for("READY=1")) << notify.all() << daemon.log();
  notify.clear();
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", 2s)) << notify.all();

  // Journald format: priority prefixes, no timestamps.
  EXPECT_TRUE(std::regex_search(daemon.log(), std::regex("^<6>runsync .* serving webhooks on ")))
      << daemon.log();

  // SIGHUP with a good config: RELOADING=1 (with MONOTONIC_USEC), then READY=1.
  dir_.write("runsync.toml", "[storage]\npath = \"" + dir_.file("mirror.db") +
                                 "\"\n[webhook]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"debug\"\n");
  notify.clear();
  daemon.signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("RELOADING=1")) << notify.all();
  EXPECT_TRUE(notify.wait_for("MONOTONIC_USEC=")) << notify.all();
  EXPECT_TRUE(notify.wait_for("READY=1")) << notify.all();
  EXPECT_TRUE(wait_until([&] { return daemon.log().find("reloaded secrets and log level (debug)") != std::string::npos; }));

  // SIGHUP with a broken config: the old one stays, the daemon keeps serving.
  dir_.write("runsync.toml", "[storage]\nbogus = 1\n");
  notify.clear();
  daemon.signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("READY=1")) << notify.all();
  EXPECT_TRUE(wait_until([&] { return daemon.log().find("<3>reload failed: ") != std::string::npos; }))
      << daemon.log();
  const unsigned short port = wait_for_listen_port(daemon);
  TestHttpClient client(port);
  EXPECT_EQ(client.get("/healthz").status, 200);

  notify.clear();
  daemon.signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1")) << notify.all();
  auto exit = daemon.wait(5s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0);
}

}  // namespace
}  // namespace runsync
