// The refresher against the fake TestRail server, with a real SQLite
// mirror and a clock the test moves.
#include "daemon/testrail/refresher.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "storage/store.h"
#include "support/fake_clock.h"
#include "support/fake_testrail.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using runsync::test::FakeTestRail;
using runsync::testing::FakeClock;
using runsync::testing::TempDir;

class RefresherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.add_project(1);
    fake_.add_project(2);
    auto store = Store::open(dir_.file("mirror.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    writer_ = std::make_unique<Writer>(std::move(store).value(), Writer::Options{});
    TestRailClientOptions copts = fake_.client_options();
    copts.max_read_attempts = 1;
    copts.priority = RequestPriority::kHint;
    client_ = TestRailClient::create(copts, clock_);
    cycle_ = std::make_unique<ProjectCycle>(*client_, *writer_, metrics_, null_logger(), clock_);
    RefresherOptions ropts;
    ropts.projects = {{1, "ID"}};
    ropts.min_refresh_interval = 2s;
    ropts.retry_interval = 10s;
    refresher_ = std::make_unique<Refresher>(ropts, *client_, *cycle_, *writer_, metrics_,
                                             null_logger(), clock_);
  }

  void TearDown() override { writer_->stop(); }

  // Stores a hint now; the wall clock then moves on by 1 ms, as it does
  // between a hint and the refresh it asks for.
  void hint(HintKind kind, std::int64_t id) {
    ASSERT_TRUE(writer_->run([&](Store& s) { return s.hints().add(kind, id, next_ms()); }).is_ok());
  }
  // The wall time now, in unix ms; the wall clock then moves on by 1 ms.
  std::int64_t next_ms() {
    const std::int64_t at = clock_.unix_ms();
    clock_.set_unix_ms(at + 1);
    return at;
  }
  // Moves time on.
  void advance(std::chrono::milliseconds d) { clock_.advance(d); }
  // The monotonic time now.
  Clock::TimePoint steady() const { return clock_.now(); }
  std::int64_t count(const std::string& sql) {
    SQLite::Database read(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return read.execAndGet(sql).getInt64();
  }
  std::string column(std::int64_t run, const std::string& name) {
    SQLite::Database read(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    SQLite::Statement st(read, "SELECT " + name + " FROM runs WHERE run_id = ?");
    st.bind(1, run);
    return st.executeStep() ? st.getColumn(0).getString() : "";
  }
  std::int64_t pending() { return count("SELECT count(*) FROM pending_refreshes"); }
  std::uint64_t outcomes(const char* outcome) {
    return metrics_.counter_sum("runsync_hint_refreshes_total", {{"outcome", outcome}});
  }

  FakeClock clock_;  // the refresher's, its client's and its cycle's
  TempDir dir_;
  FakeTestRail fake_;
  Metrics metrics_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<TestRailClient> client_;
  std::unique_ptr<ProjectCycle> cycle_;
  std::unique_ptr<Refresher> refresher_;
};

TEST_F(RefresherTest, ARunRefreshedWithinItsWindowWaitsForTheWindowToEnd) {
  const auto run = fake_.add_run({{"project_id", 1}, {"name", "R"}, {"passed_count", 1}});
  const std::int64_t id = run["id"].get<std::int64_t>();
  hint(HintKind::kRun, id);
  EXPECT_EQ(refresher_->refresh_due(), steady());  // it refreshed: pass again at once
  EXPECT_EQ(fake_.count("get_run"), 1);
  EXPECT_EQ(column(id, "passed_count"), "1");
  EXPECT_EQ(pending(), 0);

  // Ten more hints within the window: held until it ends.
  fake_.set_now(fake_.now() + 5);
  fake_.update_run(id, {{"passed_count", 9}});
  advance(500ms);
  for (int i = 0; i < 10; ++i) hint(HintKind::kRun, id);
  EXPECT_EQ(refresher_->refresh_due(), steady() + 1500ms);
  EXPECT_EQ(fake_.count("get_run"), 1);
  advance(1500ms);
  EXPECT_EQ(refresher_->refresh_due(), steady());
  EXPECT_EQ(fake_.count("get_run"), 2);
  EXPECT_EQ(column(id, "passed_count"), "9");
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(refresher_->refresh_due(), std::nullopt);  // nothing pending
  EXPECT_EQ(outcomes("changed"), 2u);
}

TEST_F(RefresherTest, AHintDuringTheRefreshKeepsItsRowForTheNextWindow) {
  const std::int64_t id = fake_.add_run({{"project_id", 1}})["id"].get<std::int64_t>();
  hint(HintKind::kRun, id);
  fake_.delay_next(1s, "get_run");
  std::optional<std::chrono::steady_clock::time_point> next;
  std::thread pass([&] { next = refresher_->refresh_due(); });
  // The request is in flight: TestRail may have answered before this change.
  ASSERT_TRUE(testing::wait_until([&] { return fake_.count("get_run") == 1; }, 5s));
  hint(HintKind::kRun, id);
  pass.join();
  EXPECT_EQ(pending(), 1);
  EXPECT_EQ(refresher_->refresh_due(), steady() + 2s);
  advance(2s);
  refresher_->refresh_due();
  EXPECT_EQ(fake_.count("get_run"), 2);
  EXPECT_EQ(pending(), 0);
}

TEST_F(RefresherTest, AFailedRefreshStaysPendingAndIsRetriedLaterEachTime) {
  const std::int64_t id = fake_.add_run({{"project_id", 1}})["id"].get<std::int64_t>();
  fake_.fail_next(500, 2, "", "get_run");
  hint(HintKind::kRun, id);
  refresher_->refresh_due();
  EXPECT_EQ(outcomes("failed"), 1u);
  EXPECT_EQ(pending(), 1);
  EXPECT_EQ(refresher_->refresh_due(), steady() + 10s);
  advance(10s);
  refresher_->refresh_due();
  EXPECT_EQ(outcomes("failed"), 2u);
  EXPECT_EQ(refresher_->refresh_due(), steady() + 20s);  // doubled
  advance(20s);
  refresher_->refresh_due();
  EXPECT_EQ(fake_.count("get_run"), 3);
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(column(id, "state"), "active");
}

TEST_F(RefresherTest, DeletedUnknownAndUnmirroredRunsAreSettledWithoutLeftovers) {
  const std::int64_t gone = fake_.add_run({{"project_id", 1}})["id"].get<std::int64_t>();
  const std::int64_t other = fake_.add_run({{"project_id", 2}})["id"].get<std::int64_t>();
  hint(HintKind::kRun, gone);
  refresher_->refresh_due();
  ASSERT_EQ(column(gone, "state"), "active");
  fake_.remove_run(gone);
  advance(2s);
  hint(HintKind::kRun, gone);
  hint(HintKind::kRun, other);   // a project not mirrored
  hint(HintKind::kRun, 424242);  // a run TestRail never had
  hint(HintKind::kProject, 2);   // a project not mirrored
  refresher_->refresh_due();
  EXPECT_EQ(column(gone, "state"), "deleted");
  EXPECT_EQ(column(other, "state"), "");
  EXPECT_EQ(column(424242, "state"), "");
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(outcomes("deleted"), 1u);
  EXPECT_EQ(outcomes("ignored"), 3u);
}

TEST_F(RefresherTest, ARunItsPlanNoLongerListsIsRefreshedAndSoMarkedDeleted) {
  const auto plan = fake_.add_plan(1, "Release", {{{"project_id", 1}}, {{"project_id", 1}}});
  const std::int64_t plan_id = plan["id"].get<std::int64_t>();
  hint(HintKind::kPlan, plan_id);
  refresher_->refresh_due();
  ASSERT_EQ(count("SELECT count(*) FROM runs WHERE state = 'active'"), 2);
  const std::int64_t dropped =
      count("SELECT max(run_id) FROM runs WHERE plan_id = " + std::to_string(plan_id));
  fake_.remove_run(dropped);
  advance(2s);
  hint(HintKind::kPlan, plan_id);
  refresher_->refresh_due();  // get_plan lists one run: the other is queued
  EXPECT_EQ(pending(), 1);
  refresher_->refresh_due();  // get_run: gone
  EXPECT_EQ(column(dropped, "state"), "deleted");
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'active'"), 1);
  EXPECT_EQ(pending(), 0);
}

TEST_F(RefresherTest, PlanAndProjectHintsRefreshTheirRuns) {
  const auto plan = fake_.add_plan(1, "Release", {{{"project_id", 1}, {"name", "in plan"}}});
  const std::int64_t loose = fake_.add_run({{"project_id", 1}, {"name", "loose"}})["id"];
  hint(HintKind::kPlan, plan["id"].get<std::int64_t>());
  refresher_->refresh_due();
  EXPECT_EQ(fake_.count("get_plan"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE plan_id IS NOT NULL AND name = 'in plan'"), 1);
  EXPECT_EQ(column(loose, "name"), "");
  hint(HintKind::kProject, 1);
  refresher_->refresh_due();
  EXPECT_EQ(column(loose, "name"), "loose");
  EXPECT_EQ(count("SELECT count(*) FROM poll_cycles WHERE kind = 'active' AND error IS NULL"), 1);
  EXPECT_EQ(pending(), 0);
}

// Adds `n` active runs to project 1 and mirrors them with one active cycle.
std::vector<std::int64_t> mirror_active_runs(FakeTestRail& fake, ProjectCycle& cycle, int n) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < n; ++i) {
    ids.push_back(fake.add_run({{"project_id", 1}, {"name", "run " + std::to_string(i)}})["id"]);
  }
  const CycleOutcome out = cycle.run(ProjectConfig{1, "ID"}, PollKind::kActive);
  EXPECT_FALSE(out.error) << *out.error;
  fake.clear_requests();
  return ids;
}

TEST_F(RefresherTest, ManyWaitingRunsOfAProjectAreServedByOneListing) {
  const auto ids = mirror_active_runs(fake_, *cycle_, 300);  // 2 pages + get_plans
  for (std::int64_t id : ids) fake_.update_run(id, {{"name", "renamed"}});
  for (std::int64_t id : ids) hint(HintKind::kRun, id);
  // Each fourth hint folded the three before it into the project's row.
  EXPECT_EQ(count("SELECT count(*) FROM pending_refreshes WHERE kind = 'run'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM pending_refreshes WHERE kind = 'project'"), 1);
  refresher_->refresh_due();
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'renamed'"), 300);
  EXPECT_EQ(fake_.count("get_runs"), 2);
  EXPECT_EQ(fake_.count("get_run"), 0);
  EXPECT_EQ(pending(), 0);
}

TEST_F(RefresherTest, ARunTheListingNoLongerShowsGetsItsOwnGetRun) {
  const auto ids = mirror_active_runs(fake_, *cycle_, 3);
  fake_.update_run(ids[0], {{"is_completed", true}});
  for (std::int64_t id : ids) hint(HintKind::kRun, id);
  hint(HintKind::kRun, ids[0]);
  hint(HintKind::kProject, 1);
  refresher_->refresh_due();
  EXPECT_EQ(fake_.count("get_runs"), 1);
  EXPECT_EQ(fake_.count("get_run"), 1);  // the run that completed, and only it
  EXPECT_EQ(column(ids[0], "is_completed"), "1");
  EXPECT_EQ(pending(), 0);
}

TEST_F(RefresherTest, UnknownIdsAreLookedUpAfterTheListingsThatMayShowThem) {
  const auto ids = mirror_active_runs(fake_, *cycle_, 2);
  const std::int64_t fresh = fake_.add_run({{"project_id", 1}, {"name", "new"}})["id"];
  hint(HintKind::kRun, 99'999);  // bogus, and hinted first
  hint(HintKind::kRun, fresh);
  hint(HintKind::kProject, 1);
  refresher_->refresh_due();
  const auto requests = fake_.requests();
  ASSERT_EQ(requests.size(), 3u);  // the listing, get_plans, then the bogus id's get_run
  EXPECT_NE(requests.back().uri.find("get_run/99999"), std::string::npos) << requests.back().uri;
  EXPECT_EQ(column(fresh, "name"), "new");
  EXPECT_EQ(pending(), 0);
}

TEST_F(RefresherTest, TenThousandDistinctRunHintsLeaveABoundedSetAndRefreshEveryRun) {
  const auto ids = mirror_active_runs(fake_, *cycle_, 2'000);
  std::vector<std::int64_t> fresh;
  for (int i = 0; i < 100; ++i) {
    fresh.push_back(fake_.add_run({{"project_id", 1}, {"name", "new"}})["id"]);
  }
  for (std::int64_t id : ids) fake_.update_run(id, {{"name", "renamed"}});
  std::int64_t peak = 0;
  // Every fifth hint names a real run (new ones among them); the rest are
  // bogus. A hundred hints a transaction, as a busy hint endpoint stores them.
  for (int batch = 0; batch < 100; ++batch) {
    ASSERT_TRUE(writer_
                    ->run([&](Store& s) -> Status {
                      for (int i = batch * 100; i < (batch + 1) * 100; ++i) {
                        std::int64_t id = 10'000'000 + i;
                        if (i % 5 == 0) id = i / 5 < 2'000 ? ids[i / 5] : fresh[(i / 5) % 100];
                        if (i % 50 == 1) id = fresh[(i / 50) % 100];
                        if (Status st = s.hints().add(HintKind::kRun, id, next_ms()); !st.is_ok()) {
                          return st;
                        }
                      }
                      return Status::ok();
                    })
                    .is_ok());
    peak = std::max(peak, pending());
  }
  peak = std::max(peak, pending());
  // At most one listing's worth of active runs (9 requests for 2,000), the
  // unknown ids' bound, and the two project rows.
  EXPECT_LE(peak, 9 + kMaxUnknownRows + 2);
  for (int pass = 0; pass < 20 && pending() > 0; ++pass) {
    refresher_->refresh_due();
    advance(3s);
  }
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'renamed'"), 2'000);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'new'"), 100);
  // Well under one request per hinted id.
  EXPECT_LE(fake_.request_count(), 9u * 2 + static_cast<std::size_t>(kMaxUnknownRows));
}

TEST_F(RefresherTest, RefreshesArePacedAtThreeQuartersOfTheBudget) {
  const auto ids = mirror_active_runs(fake_, *cycle_, 2);
  RefresherOptions ropts;
  ropts.projects = {{1, "ID"}};
  ropts.max_requests_per_minute = 12;  // a burst of 1, then one per 6.67 s
  Refresher paced(ropts, *client_, *cycle_, *writer_, metrics_, null_logger(), clock_);
  hint(HintKind::kRun, ids[0]);
  hint(HintKind::kRun, ids[1]);
  auto next = paced.refresh_due();
  EXPECT_EQ(fake_.count("get_run"), 1);
  next = paced.refresh_due();
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(*next, steady() + 6s);
  EXPECT_EQ(fake_.count("get_run"), 1);
  advance(7s);
  paced.refresh_due();
  EXPECT_EQ(fake_.count("get_run"), 2);
  EXPECT_EQ(pending(), 0);
}

// SPEC §4a: with budget to spare the mirror follows a hint within 2 s. The
// refresher runs on its own thread and time passes only on the injected
// clock, slower than real time (1 ms each look), so whatever held the
// refresh back — a window, the pacing, a wait for the request budget —
// shows as time that clock moved before the hint was served.
TEST_F(RefresherTest, WithBudgetToSpareAHintIsServedWithinTwoSeconds) {
  TestRailClientOptions copts = fake_.client_options();
  copts.max_read_attempts = 1;
  copts.priority = RequestPriority::kHint;
  copts.max_requests_per_minute = 24;  // from an empty allowance, pacing would wait 3.3 s
  auto client = TestRailClient::create(copts, clock_);
  ProjectCycle cycle(*client, *writer_, metrics_, null_logger(), clock_);
  RefresherOptions ropts;
  ropts.projects = {{1, "ID"}};
  ropts.max_requests_per_minute = 24;
  ASSERT_EQ(ropts.min_refresh_interval, 2s);
  Refresher refresher(ropts, *client, cycle, *writer_, metrics_, null_logger(), clock_);
  const std::int64_t id = mirror_active_runs(fake_, cycle, 3)[1];  // 2 of the 24 requests
  std::thread running([&] { refresher.run(); });

  fake_.update_run(id, {{"name", "renamed"}});
  const auto hinted = steady();
  hint(HintKind::kRun, id);
  refresher.notify();
  // The injected clock stands still: a refresher that waited for any window
  // or pace would never serve the hint.
  const bool served = testing::wait_until(
      [&] { return column(id, "name") == "renamed" && pending() == 0; }, 30s);
  refresher.stop();
  running.join();
  ASSERT_TRUE(served);
  EXPECT_LT(steady() - hinted, 2s);
  EXPECT_EQ(fake_.count("get_run"), 1);
}

}  // namespace
}  // namespace runsync
