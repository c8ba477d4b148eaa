// The daemon's pruner over a real Writer and database file, with a fake clock.
#include "daemon/pruner.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/fake_clock.h"
#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;
using namespace std::chrono_literals;

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kNow = 1'800'000'000;

class PrunerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(dir_.file("mirror.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    writer_ = std::make_unique<Writer>(std::move(store).value(), Writer::Options{});
  }
  void TearDown() override { writer_->stop(); }

  // `n` deliveries, run changes and poll cycles, each `age_days` old.
  void history(int n, std::int64_t age_days, int first) {
    const std::int64_t at = kNow - age_days * kDay;
    Status st = writer_->run([&](Store& store) {
      for (int i = first; i < first + n; ++i) {
        WebhookDelivery d = delivery(completed(i, at, 1), at);
        d.delivery_key = "id:" + std::to_string(i);
        if (auto r = store.journal().apply(d); !r) return r.status();
        auto id = store.poll_cycles().begin(1, PollKind::kActive, at);
        if (!id) return id.status();
        if (Status f = store.poll_cycles().finish(*id, {}, std::nullopt, at); !f) return f;
      }
      return Status::ok();
    });
    ASSERT_TRUE(st.is_ok()) << st.message();
  }

  std::int64_t rows(const std::string& table) {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
  }

  std::unique_ptr<Pruner> pruner(PrunerOptions options) {
    return std::make_unique<Pruner>(options, *writer_, metrics_, null_logger(), clock_);
  }

  // Whether `table`'s pruned-rows counter reached `n` within 10 s, while
  // time passes on the pruner's clock (10 ms each look).
  bool pruned_reaches(const std::string& table, std::uint64_t n) {
    return wait_until(
        [&] {
          clock_.advance(10ms);
          return pruned(table) == n;
        },
        10s);
  }

  std::uint64_t pruned(const std::string& table) {
    return metrics_.counter_sum("runsync_retention_pruned_rows_total", {{"table", table}});
  }

  TempDir dir_;
  Metrics metrics_;
  FakeClock clock_{kNow * 1000};
  std::unique_ptr<Writer> writer_;
};

TEST_F(PrunerTest, DeletesPastTheWindowInBatchesAndCountsThem) {
  history(2500, 40, 1);    // past 30 days
  history(100, 10, 5000);  // inside
  PrunerOptions options;
  options.webhook_events = std::chrono::hours(24 * 30);
  options.poll_cycles = std::chrono::hours(24 * 30);
  auto p = pruner(options);
  auto round = p->prune_once();
  ASSERT_TRUE(round.is_ok()) << round.message();
  EXPECT_EQ((*round)[HistoryTable::kWebhookEvents], 2500);
  EXPECT_EQ((*round)[HistoryTable::kPollCycles], 2500);
  EXPECT_EQ(round->count(HistoryTable::kRunChanges), 0u);
  EXPECT_EQ(rows("webhook_events"), 100);
  EXPECT_EQ(rows("poll_cycles"), 100);
  EXPECT_EQ(pruned("webhook_events"), 2500u);
  EXPECT_EQ(pruned("poll_cycles"), 2500u);
  EXPECT_EQ(pruned("run_changes"), 0u);
  EXPECT_NE(metrics_.render().find("runsync_retention_pruned_rows_total{table=\"run_changes\"} 0"),
            std::string::npos);
}

TEST_F(PrunerTest, RunChangesAreKeptForEverByDefault) {
  history(50, 400, 1);
  const std::int64_t changes = rows("run_changes");
  ASSERT_GT(changes, 0);
  auto p = pruner(PrunerOptions{});
  ASSERT_TRUE(p->prune_once().is_ok());
  EXPECT_EQ(rows("run_changes"), changes);
  EXPECT_EQ(rows("webhook_events"), 1);  // the newest stays

  PrunerOptions with_window;
  with_window.run_changes = std::chrono::hours(24 * 365);
  ASSERT_TRUE(pruner(with_window)->prune_once().is_ok());
  EXPECT_EQ(rows("run_changes"), 1);
}

TEST_F(PrunerTest, RunsOnScheduleAndStops) {
  history(10, 40, 1);
  PrunerOptions options;
  options.interval = 100ms;
  auto p = pruner(options);
  std::thread t([&] { p->run(); });
  EXPECT_TRUE(pruned_reaches("webhook_events", 9));
  history(10, 40, 100);  // the next round finds these
  EXPECT_TRUE(pruned_reaches("webhook_events", 19));
  p->stop();
  t.join();
  EXPECT_EQ(rows("webhook_events"), 1);
}

// A reload (SIGHUP) hands new options to the running pruner: a shorter
// interval brings the next round forward, new windows apply to it.
TEST_F(PrunerTest, ReconfigureTakesEffectWithoutWaitingOutTheOldInterval) {
  history(10, 40, 1);
  PrunerOptions options;
  options.interval = std::chrono::hours(1);
  auto p = pruner(options);
  std::thread t([&] { p->run(); });
  ASSERT_TRUE(wait_until([&] { return pruned("webhook_events") == 9; }, 10s));
  history(10, 10, 100);  // inside the 30 days
  PrunerOptions shorter = options;
  shorter.interval = 100ms;
  shorter.webhook_events = std::chrono::hours(24 * 5);
  p->reconfigure(shorter);
  EXPECT_TRUE(pruned_reaches("webhook_events", 19));
  EXPECT_EQ(p->options().interval, 100ms);
  p->stop();
  t.join();
  EXPECT_EQ(rows("webhook_events"), 1);
}

}  // namespace
}  // namespace runsync
