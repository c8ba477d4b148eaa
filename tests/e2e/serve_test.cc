// End-to-end: the built `runsync` binary as users run it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <mutex>
#include <thread>

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

std::string event_body(int run, int seq) {
  return testing::webhook_body("run.completed", run, 1700000000 + seq,
                               R"(,"cases":100,"passed":)" + std::to_string(seq % 100) +
                                   R"(,"failed":1,"blocked":0,"duration":)" + std::to_string(seq),
                               R"(,"team_member_id":40)");
}

class ServeTest : public ::testing::Test {
 protected:
  // `extra`: more lines of the [webhook] table.
  std::string write_config(const std::string& extra = "") {
    return ConfigBuilder(dir_.file("mirror.db")).lines("webhook", extra).write(dir_);
  }

  std::unique_ptr<ChildProcess> start(const std::string& config) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{RUNSYNC_BINARY, "serve", "--config", config},
        dir_.file("serve" + std::to_string(++starts_) + ".log"));
  }

  std::int64_t count(const std::string& sql) {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }

  // Posts unique events from `threads` connections until `stop`; records
  // the bodies that were answered 200.
  void post_until(unsigned short port, int threads, std::atomic<bool>& stop,
                  std::vector<std::string>& acked, std::mutex& mu, std::atomic<int>& acked_count) {
    for (int t = 0; t < threads; ++t) {
      posters_.emplace_back([&, t, port] {
        TestHttpClient client(port);
        for (int i = 0; !stop; ++i) {
          const std::string body = event_body(t * 100000 + i % 50, t * 1000000 + i);
          auto r = client.post("/webhook", body);
          if (r.status == 200) {
            std::lock_guard lock(mu);
            acked.push_back(body);
            ++acked_count;
          } else if (r.status == 0) {
            return;  // the daemon went away
          }
        }
      });
    }
  }

  void join_posters() {
    for (auto& t : posters_) t.join();
    posters_.clear();
  }

  TempDir dir_;
  int starts_ = 0;
  std::vector<std::thread> posters_;
};

TEST_F(ServeTest, EveryAcknowledgedEventSurvivesSigkill) {
  const std::string config = write_config();
  auto daemon = start(config);
  const unsigned short port = wait_for_listen_port(*daemon);
  ASSERT_NE(port, 0) << daemon->log();

  std::atomic<bool> stop{false};
  std::vector<std::string> acked;
  std::mutex mu;
  std::atomic<int> acked_count{0};
  post_until(port, 8, stop, acked, mu, acked_count);
  ASSERT_TRUE(wait_until([&] { return acked_count >= 3000; }, 60s));
  daemon->signal(SIGKILL);  // mid-stream: requests are in flight
  ASSERT_TRUE(daemon->wait(10s).has_value());
  stop = true;
  join_posters();

  {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READWRITE);  // recovers the WAL
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
    SQLite::Statement find(db, "SELECT count(*) FROM webhook_events WHERE body = ?");
    int missing = 0;
    for (const auto& body : acked) {
      find.reset();
      find.bind(1, body);
      find.executeStep();
      if (find.getColumn(0).getInt() != 1) ++missing;
    }
    EXPECT_EQ(missing, 0) << "of " << acked.size() << " acknowledged events";
  }

  // And the daemon starts again on the same file.
  auto again = start(config);
  const unsigned short port2 = wait_for_listen_port(*again);
  ASSERT_NE(port2, 0) << again->log();
  TestHttpClient client(port2);
  EXPECT_EQ(client.post("/webhook", acked.front()).body, R"({"result":"duplicate"})");
  again->signal(SIGTERM);
  auto status = again->wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST_F(ServeTest, SigtermFinishesInFlightWorkAndExitsZeroWithinFiveSeconds) {
  const std::string config = write_config();
  auto daemon = start(config);
  const unsigned short port = wait_for_listen_port(*daemon);
  ASSERT_NE(port, 0) << daemon->log();
  std::atomic<bool> stop{false};
  std::vector<std::string> acked;
  std::mutex mu;
  std::atomic<int> acked_count{0};
  post_until(port, 8, stop, acked, mu, acked_count);
  ASSERT_TRUE(wait_until([&] { return acked_count >= 500; }, 60s));
  daemon->signal(SIGTERM);
  auto status = daemon->wait(5s);
  stop = true;
  join_posters();
  ASSERT_TRUE(status.has_value()) << "still running 5 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status)) << daemon->log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << daemon->log();
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), static_cast<std::int64_t>(acked.size()));
  EXPECT_NE(daemon->log().find("stopped"), std::string::npos);
}

TEST_F(ServeTest, AReaderInAnotherProcessDoesNotStopIngest) {
  const std::string config = write_config();
  auto daemon = start(config);
  const unsigned short port = wait_for_listen_port(*daemon);
  ASSERT_NE(port, 0) << daemon->log();
  TestHttpClient client(port);
  ASSERT_EQ(client.post("/webhook", event_body(1, 1)).status, 200);

  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t reader = fork();
  if (reader == 0) {
    // The child holds a read transaction open until told to stop.
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    db.exec("BEGIN");
    const int n = db.execAndGet("SELECT count(*) FROM webhook_events").getInt();
    char c = static_cast<char>('0' + n);
    (void)!write(ready[1], &c, 1);
    (void)!read(release[0], &c, 1);
    db.exec("COMMIT");
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_EQ(c, '1');
  for (int i = 2; i <= 300; ++i) {
    ASSERT_EQ(client.post("/webhook", event_body(i, i)).status, 200) << i;
  }
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 300);
  (void)!write(release[1], &c, 1);
  int status = 0;
  waitpid(reader, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  daemon->signal(SIGTERM);
  EXPECT_TRUE(daemon->wait(5s).has_value());
}

TEST_F(ServeTest, RefusesADatabaseNewerThanItself) {
  {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA user_version = 999");
  }
  auto r = run_command({RUNSYNC_BINARY, "serve", "--config", write_config()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("newer"), std::string::npos) << r.err;
}

TEST_F(ServeTest, CommandLine) {
  auto help = run_command({RUNSYNC_BINARY, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* cmd : {"serve", "sync", "status", "migrate", "check-config", "run", "version",
                          "backup"}) {
    EXPECT_NE(help.out.find(cmd), std::string::npos) << cmd;
  }
  EXPECT_NE(run_command({RUNSYNC_BINARY}).exit_code, 0);
  EXPECT_NE(run_command({RUNSYNC_BINARY, "frobnicate"}).exit_code, 0);

  auto version = run_command({RUNSYNC_BINARY, "version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("schema version"), std::string::npos);
  EXPECT_NE(version.out.find("sqlite"), std::string::npos);

  const std::string bad = dir_.write("bad.toml", "[webhook]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n");
  auto check = run_command({RUNSYNC_BINARY, "check-config", "--config", bad});
  EXPECT_NE(check.exit_code, 0);
  EXPECT_NE(check.err.find(bad + ":3"), std::string::npos) << check.err;

  const std::string secret = dir_.write("secret", "hunter2-webhook\n");
  const std::string good = write_config("secret_file = \"" + secret + "\"\n");
  auto effective = run_command({RUNSYNC_BINARY, "check-config", "--config", good});
  EXPECT_EQ(effective.exit_code, 0) << effective.err;
  EXPECT_EQ(effective.out.find("hunter2"), std::string::npos);
  EXPECT_NE(effective.out.find("<redacted>"), std::string::npos);

  auto migrate = run_command({RUNSYNC_BINARY, "migrate", "--config", good});
  EXPECT_EQ(migrate.exit_code, 0) << migrate.err;
  auto status = run_command({RUNSYNC_BINARY, "status", "--json", "--config", good});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_NE(status.out.find("\"healthy\": true"), std::string::npos) << status.out;
}

}  // namespace
}  // namespace runsync
