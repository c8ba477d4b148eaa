// End-to-end: the deployment of README "Replicas and recovery" (SPEC §8a).
// `litestream replicate` follows the database of a `runsync serve` under
// webhook load while TestRail changes; the machine is lost (both killed
// with SIGKILL); `litestream restore` brings the replica back under a new
// path; `runsync serve` runs on it, and its first poll cycle, a full sync,
// makes every run equal to TestRail at once.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "support/config_builder.h"
#include "support/events.h"
#include "support/fake_testrail.h"
#include "support/process.h"
#include "support/temp_dir.h"

#ifndef LITESTREAM_BINARY
#define LITESTREAM_BINARY ""
#endif

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
using Clock = std::chrono::steady_clock;

constexpr int kRuns = 40;
constexpr int kPosters = 4;

struct Delivery {
  std::string body;
  Clock::time_point sent;
  Clock::time_point acked;
};

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(LITESTREAM_BINARY))
        << "litestream not found at '" << LITESTREAM_BINARY
        << "': scripts/deps.sh installs it, then re-run cmake";
    fake_.add_project(1);
    // Older than every webhook until the final full sync, so that webhooks
    // set the counts during the load and the full sync sets them last.
    fake_.set_now(unix_now() - 3600);
    for (int i = 0; i < kRuns; ++i) {
      run_ids_.push_back(
          fake_.add_run({{"project_id", 1}, {"name", "Run " + std::to_string(i)}})["id"]
              .get<std::int64_t>());
    }
  }

  std::string write_config(const std::string& name, const std::string& db) {
    const std::string key = dir_.write("api-key", fake_.options().api_key + "\n");
    return ConfigBuilder(db)
        .set("storage", "checkpoints", "\"external\"")
        .testrail(fake_.base_url(), key, fake_.options().user)
        .set("testrail", "poll_interval", "\"1s\"")
        .set("testrail", "max_requests_per_minute", "6000")
        .write(dir_, name);
  }

  std::unique_ptr<ChildProcess> serve(const std::string& config) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{RUNSYNC_BINARY, "serve", "--config", config},
        dir_.file("serve" + std::to_string(++starts_) + ".log"));
  }

  // Closed-loop posters of run.updated events until `stop_`; each answered
  // 200 is recorded with when it was sent and answered.
  void start_posting(unsigned short port) {
    for (int t = 0; t < kPosters; ++t) {
      posters_.emplace_back([this, t, port] {
        TestHttpClient client(port);
        for (int i = 0; !stop_; ++i) {
          const std::int64_t run = run_ids_[static_cast<std::size_t>((t * 7 + i) % kRuns)];
          const std::string body = testing::webhook_body(
              "run.updated", run, unix_now(), R"(,"cases_count":)" + std::to_string(100 + i % 50),
              R"(,"team_member_id":)" + std::to_string(t * 10000000 + i));
          const Clock::time_point sent = Clock::now();
          auto r = client.post("/webhook", body);
          if (r.status == 0) return;  // the daemon is gone
          if (r.status != 200) continue;
          std::lock_guard lock(mu_);
          acked_.push_back({body, sent, Clock::now()});
        }
      });
    }
  }

  void stop_posting() {
    stop_ = true;
    for (auto& t : posters_) t.join();
    posters_.clear();
  }

  std::size_t acked_count() {
    std::lock_guard lock(mu_);
    return acked_.size();
  }

  TempDir dir_;
  FakeTestRail fake_;
  std::vector<std::int64_t> run_ids_;
  int starts_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> posters_;
  std::mutex mu_;
  std::vector<Delivery> acked_;
};

TEST_F(ReplicaTest, LoseTheMachineRestoreAndServeAgain) {
  const std::string primary = dir_.file("primary.db");
  const std::string replica = dir_.file("replica");
  const std::string litestream_config =
      dir_.write("litestream.yml", "dbs:\n  - path: " + primary + "\n    replicas:\n" +
                                       "      - type: file\n        path: " + replica +
                                       "\n        sync-interval: 200ms\n");
  auto daemon = serve(write_config("primary.toml", primary));
  const unsigned short port = wait_for_listen_port(*daemon);
  ASSERT_NE(port, 0) << daemon->log();
  ChildProcess litestream({LITESTREAM_BINARY, "replicate", "-config", litestream_config},
                          dir_.file("litestream.log"));

  // A reader of the change feed, as a dashboard would follow it.
  std::atomic<std::int64_t> highest_seen{0};
  std::atomic<bool> stop_reading{false};
  std::thread reader([&] {
    while (!stop_reading) {
      try {
        SQLite::Database db(primary, SQLite::OPEN_READONLY);
        highest_seen = std::max<std::int64_t>(highest_seen,
                                              db.execAndGet("SELECT coalesce(max(change_seq), 0) "
                                                            "FROM runs")
                                                  .getInt64());
      } catch (const std::exception&) {
        // not created yet
      }
      std::this_thread::sleep_for(5ms);  // a polling reader's pace, not a wait
    }
  });

  start_posting(port);
  // TestRail changes too: names, which the polls every second bring in.
  std::atomic<bool> stop_changing{false};
  std::thread changer([&] {
    for (int i = 0; !stop_changing; ++i) {
      fake_.update_run(run_ids_[static_cast<std::size_t>(i % kRuns)],
                       {{"name", "Run renamed " + std::to_string(i)}, {"passed_count", i % 17}});
      std::this_thread::sleep_for(10ms);  // the pace of changes, not a wait
    }
  });
  // Load long enough for several polls of the changes, and until the
  // replica holds a snapshot (Litestream's first sync copies the whole file).
  const std::string generations = replica + "/generations";
  ASSERT_TRUE(wait_until(
      [&] {
        return acked_count() >= 3000 && fake_.count("get_runs") >= 3 &&
               std::filesystem::exists(generations);
      },
      60s))
      << daemon->log() << litestream.log();

  // The machine is lost: daemon and replicator die at once, mid-load.
  daemon->signal(SIGKILL);
  litestream.signal(SIGKILL);
  ASSERT_TRUE(daemon->wait(10s).has_value());
  ASSERT_TRUE(litestream.wait(10s).has_value());
  stop_posting();
  stop_changing = true;
  changer.join();
  stop_reading = true;
  reader.join();
  std::size_t generation_count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(generations)) {
    ++generation_count;
  }
  EXPECT_EQ(generation_count, 1u) << litestream.log();

  // Restore under a new path, as on a new machine.
  const std::string restored = dir_.file("restored.db");
  CommandResult restore =
      run_command({LITESTREAM_BINARY, "restore", "-o", restored, "file://" + replica});
  ASSERT_EQ(restore.exit_code, 0) << restore.out << restore.err;

  std::int64_t restored_highest = 0;
  std::int64_t restored_cycles = 0;
  {
    SQLite::Database db(restored, SQLite::OPEN_READWRITE);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
    restored_highest = db.execAndGet("SELECT coalesce(max(seq), 0) FROM run_changes").getInt64();
    restored_cycles = db.execAndGet("SELECT coalesce(max(id), 0) FROM poll_cycles").getInt64();
    // The replica holds a prefix of what was acknowledged: every event
    // acknowledged before one it holds was sent is there too.
    SQLite::Statement find(db, "SELECT count(*) FROM webhook_events WHERE body = ?");
    std::size_t present = 0;
    Clock::time_point latest_present_sent = Clock::time_point::min();
    Clock::time_point earliest_missing_ack = Clock::time_point::max();
    for (const Delivery& d : acked_) {
      find.reset();
      find.bind(1, d.body);
      find.executeStep();
      if (find.getColumn(0).getInt() == 1) {
        ++present;
        latest_present_sent = std::max(latest_present_sent, d.sent);
      } else {
        earliest_missing_ack = std::min(earliest_missing_ack, d.acked);
      }
    }
    EXPECT_GT(present, 0u);
    EXPECT_LE(latest_present_sent, earliest_missing_ack)
        << present << " of " << acked_.size() << " acknowledged events restored";
    std::cout << "restored " << present << " of " << acked_.size()
              << " acknowledged events; change feed: a reader saw " << highest_seen
              << ", the replica holds up to " << restored_highest << "\n";
  }

  // TestRail changed while the machine was down. serve's first cycle is a
  // full sync: the restored mirror is exact once it has run, not after
  // full_sync_interval.
  for (std::size_t i = 0; i < run_ids_.size(); i += 3) {
    fake_.update_run(run_ids_[i],
                     {{"name", "After the loss " + std::to_string(i)}, {"failed_count", 3}});
  }
  fake_.set_now(unix_now() + 1);
  const std::string config = write_config("restored.toml", restored);
  auto again = serve(config);
  const unsigned short port2 = wait_for_listen_port(*again);
  ASSERT_NE(port2, 0) << again->log();
  ASSERT_TRUE(wait_until(
      [&] {
        SQLite::Database db(restored, SQLite::OPEN_READONLY);
        return db.execAndGet("SELECT count(*) FROM poll_cycles WHERE kind = 'full' AND id > " +
                             std::to_string(restored_cycles) +
                             " AND finished_at IS NOT NULL AND error IS NULL")
                   .getInt64() > 0;
      },
      20s))
      << again->log();
  TestHttpClient client(port2);
  const std::string late =
      testing::webhook_body("run.updated", run_ids_[1], unix_now(), R"(,"cases_count":999)");
  EXPECT_EQ(client.post("/webhook", late).status, 200);
  again->signal(SIGTERM);
  auto status = again->wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << again->log();

  SQLite::Database db(restored, SQLite::OPEN_READONLY);
  // The change feed goes on above every number a reader saw before the loss.
  const std::string since = std::to_string(restored_highest);
  EXPECT_GT(db.execAndGet("SELECT count(*) FROM run_changes WHERE seq > " + since).getInt64(), 0);
  EXPECT_GT(db.execAndGet("SELECT min(seq) FROM run_changes WHERE seq > " + since).getInt64(),
            highest_seen.load());
  SQLite::Statement journaled(db, "SELECT count(*) FROM webhook_events WHERE body = ?");
  journaled.bind(1, late);
  ASSERT_TRUE(journaled.executeStep());
  EXPECT_EQ(journaled.getColumn(0).getInt(), 1);
  // Every run equals TestRail.
  SQLite::Statement row(
      db, "SELECT name, passed_count, failed_count, state FROM runs WHERE run_id = ?");
  for (std::int64_t id : run_ids_) {
    const auto upstream = fake_.run(id);
    ASSERT_TRUE(upstream.has_value());
    row.reset();
    row.bind(1, id);
    ASSERT_TRUE(row.executeStep()) << "run " << id;
    EXPECT_EQ(row.getColumn(0).getString(), (*upstream)["name"].get<std::string>()) << id;
    EXPECT_EQ(row.getColumn(1).getInt64(), (*upstream)["passed_count"].get<std::int64_t>()) << id;
    EXPECT_EQ(row.getColumn(2).getInt64(), (*upstream)["failed_count"].get<std::int64_t>()) << id;
    EXPECT_EQ(row.getColumn(3).getString(), "active") << id;
  }
}

}  // namespace
}  // namespace runsync
