// The poller against the fake TestRail server, with a real SQLite mirror.
#include "daemon/testrail/poller.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include "core/webhook_event.h"
#include "daemon/http/http_client.h"
#include "storage/store.h"
#include "support/events.h"
#include "support/fake_clock.h"
#include "support/fake_testrail.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::test::FakeTestRail;
using runsync::testing::FakeClock;
using runsync::testing::TempDir;

class PollerTest : public ::testing::Test {
 protected:
  void SetUp() override { fake_.add_project(1); }

  void start(int max_read_attempts = 3) {
    auto store = Store::open(dir_.file("mirror.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    writer_ = std::make_unique<Writer>(std::move(store).value(), Writer::Options{});
    TestRailClientOptions copts = fake_.client_options();
    copts.max_read_attempts = max_read_attempts;
    copts.max_backoff = std::chrono::seconds(1);
    copts.jitter_seed = 7;
    client_ = std::make_unique<TestRailClient>(copts, http_, clock_);
    PollerOptions popts;
    popts.projects = {{1, "ID"}};
    clock_.set_unix_seconds(fake_.now());  // our clock agrees with the server's
    poller_ = std::make_unique<Poller>(popts, *client_, *writer_, metrics_, null_logger(), clock_);
  }

  void TearDown() override {
    if (writer_) writer_->stop();
  }

  CycleOutcome cycle(PollKind kind) { return poller_->run_cycle({1, "ID"}, kind); }
  void expect_a_repeated_page_fails_the_cycle(int runs);
  void expect_an_unreadable_run_fails_the_cycle(const nlohmann::json& change,
                                                const std::string& message);

  SQLite::Database reader() { return SQLite::Database(dir_.file("mirror.db"), SQLite::OPEN_READONLY); }
  std::int64_t count(const std::string& sql) { return reader().execAndGet(sql).getInt64(); }
  std::string text(const std::string& sql) { return reader().execAndGet(sql).getString(); }

  void webhook(const std::string& body) { webhook(body, fake_.now()); }
  void webhook(const std::string& body, std::int64_t received_at) {
    WebhookDelivery d = testing::delivery(body, received_at, "test:" + body);
    d.event.observation.set(Field::kProjectId, Value{std::int64_t{1}});
    ASSERT_TRUE(writer_->run([&](Store& s) { return s.journal().apply(d).status(); }).is_ok());
  }

  std::int64_t add_runs(int n, bool completed = false) {
    std::int64_t first = 0;
    for (int i = 0; i < n; ++i) {
      auto r = fake_.add_run({{"project_id", 1}, {"name", "run " + std::to_string(i)},
                              {"is_completed", completed}, {"passed_count", i}});
      if (i == 0) first = r["id"].get<std::int64_t>();
    }
    return first;
  }

  TempDir dir_;
  FakeTestRail fake_{[] {
    FakeTestRail::Options o;
    o.max_page_size = 3;
    return o;
  }()};
  Metrics metrics_;
  HttpClient http_;
  FakeClock clock_;  // the client's waits pass at once
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<TestRailClient> client_;
  std::unique_ptr<Poller> poller_;
};

TEST_F(PollerTest, FullCycleFollowsPaginationAndRecordsTheCycle) {
  start();
  add_runs(10);
  add_runs(2, /*completed=*/true);
  const CycleOutcome out = cycle(PollKind::kFull);
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 12);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'completed'"), 2);
  EXPECT_EQ(fake_.count("get_runs"), 4);  // 12 runs, 3 per page
  EXPECT_EQ(count("SELECT count(*) FROM poll_cycles WHERE error IS NULL AND kind = 'full' "
                  "AND pages = 5 AND runs_seen = 12 AND runs_changed = 12 AND finished_at IS NOT NULL"),
            1);
  EXPECT_EQ(out.stats.requests, static_cast<std::int64_t>(fake_.request_count()));
  EXPECT_EQ(text("SELECT source FROM run_changes LIMIT 1"), "poll");
}

TEST_F(PollerTest, ActiveCycleListsOnlyActiveRuns) {
  start();
  add_runs(4);
  add_runs(3, true);
  ASSERT_FALSE(cycle(PollKind::kActive).error);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 4);
  for (const auto& r : fake_.requests()) {
    if (r.endpoint == "get_runs" || r.endpoint == "get_plans") {
      EXPECT_NE(r.uri.find("is_completed=0"), std::string::npos) << r.uri;
    }
  }
}

TEST_F(PollerTest, PlanRunsAreMirroredWithTheirPlan) {
  start();
  add_runs(1);
  auto plan = fake_.add_plan(1, "Release 2.0", {{{"name", "Chrome"}}, {{"name", "Firefox"}}});
  const CycleOutcome out = cycle(PollKind::kActive);
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE plan_id = " + plan["id"].dump() +
                  " AND plan_name = 'Release 2.0'"),
            2);
  EXPECT_EQ(fake_.count("get_plan"), 1);
}

TEST_F(PollerTest, ARepollThatFindsNothingNewWritesNothing) {
  start();
  add_runs(7);
  fake_.add_plan(1, "P", {{{"name", "x"}}});
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  const auto changes = count("SELECT count(*) FROM run_changes");
  const auto seq = count("SELECT max(change_seq) FROM runs");
  fake_.set_now(fake_.now() + 60);
  const CycleOutcome again = cycle(PollKind::kFull);
  ASSERT_FALSE(again.error);
  EXPECT_EQ(again.stats.runs_changed, 0);
  EXPECT_EQ(count("SELECT count(*) FROM run_changes"), changes);
  EXPECT_EQ(count("SELECT max(change_seq) FROM runs"), seq);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE updated_at > " + std::to_string(fake_.now() - 60)), 0);
}

TEST_F(PollerTest, ADeletedRunIsMarkedDeletedByGetRun) {
  start();
  const auto first = add_runs(5);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  fake_.remove_run(first + 2);
  const CycleOutcome out = cycle(PollKind::kActive);
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(out.stats.runs_deleted, 1);
  EXPECT_EQ(text("SELECT state FROM runs WHERE run_id = " + std::to_string(first + 2)), "deleted");
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'active'"), 4);
  EXPECT_EQ(count("SELECT runs_deleted FROM poll_cycles ORDER BY id DESC LIMIT 1"), 1);
}

TEST_F(PollerTest, AFailureInTheMiddleOfAListingDeletesNothing) {
  start(/*max_read_attempts=*/1);
  const auto first = add_runs(9);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  fake_.remove_run(first);
  fake_.remove_run(first + 8);
  fake_.fail_next(500, 1, "", "offset=3");
  const CycleOutcome out = cycle(PollKind::kFull);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 0);
  EXPECT_EQ(fake_.count("get_run"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM poll_cycles WHERE error IS NOT NULL"), 1);
  EXPECT_NE(text("SELECT error FROM poll_cycles ORDER BY id DESC LIMIT 1").find("500"), std::string::npos);
  // The next complete cycle does delete them.
  const CycleOutcome next = cycle(PollKind::kFull);
  ASSERT_FALSE(next.error) << *next.error;
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 2);
}

void PollerTest::expect_an_unreadable_run_fails_the_cycle(const nlohmann::json& change,
                                                          const std::string& message) {
  start();
  const auto first = add_runs(5);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  fake_.remove_run(first);
  fake_.update_run(first + 4, change);  // on the second page
  const auto changes = count("SELECT count(*) FROM run_changes");
  const CycleOutcome out = cycle(PollKind::kFull);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_NE(out.error->find("get_runs answered a run it cannot parse: " + message),
            std::string::npos)
      << *out.error;
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM run_changes"), changes);
  EXPECT_EQ(fake_.count("get_run"), 0);
}

TEST_F(PollerTest, AnUnreadableRunFailsTheCycleAndDeletesNothing) {
  expect_an_unreadable_run_fails_the_cycle({{"name", 5}}, "run.name must be a string");
}

// Counts are integers >= 0 from every source (SPEC §4, §6): a negative one
// is a malformed run like any other.
TEST_F(PollerTest, ARunWithANegativeCountFailsTheCycleAndDeletesNothing) {
  expect_an_unreadable_run_fails_the_cycle({{"failed_count", -3}},
                                           "run.failed_count must be an integer >= 0 or null");
}

TEST_F(PollerTest, AnUnreadablePageFailsTheCycleAsABadResponse) {
  start(/*max_read_attempts=*/1);
  add_runs(4);
  const std::string last_page = R"({"runs":[{"id":1}],"_links":{"next":null}})";
  struct Case {
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {R"({"runs":[{"id":1}],"_links":{"next":7}})",
       "get_runs: HTTP 200: `_links.next` must be a string"},
      // Valid JSON up to a NUL byte, which would hide the rest of the page.
      {last_page + std::string(1, '\0') + R"({"runs":[{"id":2}]})",
       "get_runs: HTTP 200: body is not valid JSON: it holds a NUL byte at offset " +
           std::to_string(last_page.size())},
  };
  for (const Case& c : cases) {
    FakeTestRail::Fault fault;
    fault.status = 200;
    fault.body = c.body;
    fault.uri_contains = "offset=3";
    fake_.push_fault(fault);
    const CycleOutcome out = cycle(PollKind::kFull);
    ASSERT_TRUE(out.error.has_value()) << c.error;
    EXPECT_NE(out.error->find(c.error), std::string::npos) << *out.error;
    EXPECT_EQ(out.stats.pages, 1);
    EXPECT_EQ(out.stats.requests, 2);
    EXPECT_EQ(count("SELECT count(*) FROM runs"), 3);  // the first page was applied
    EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 0);
  }
}

// A run in project 1's listing without project_id (as recorded get_runs
// answers have them) is stored in project 1, so the next cycle that no
// longer lists it refreshes it and marks it deleted.
TEST_F(PollerTest, ARunListedWithoutProjectIdBelongsToTheProjectPolled) {
  start(/*max_read_attempts=*/1);
  FakeTestRail::Fault fault;
  fault.status = 200;
  fault.body = R"({"runs":[{"id":42,"name":"no project_id","is_completed":false}],)"
               R"("_links":{"next":null}})";
  fault.uri_contains = "get_runs";
  fake_.push_fault(fault);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  EXPECT_EQ(count("SELECT project_id FROM runs WHERE run_id = 42"), 1);

  const CycleOutcome again = cycle(PollKind::kFull);  // the fake never had run 42
  ASSERT_FALSE(again.error) << *again.error;
  EXPECT_EQ(fake_.count("get_run"), 1);
  EXPECT_EQ(text("SELECT state FROM runs WHERE run_id = 42"), "deleted");
}

TEST_F(PollerTest, AFailedPlanFetchDeletesNothing) {
  start(1);
  add_runs(2);
  fake_.add_plan(1, "P", {{{"name", "a"}}, {{"name", "b"}}});
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  const std::int64_t plan_run = fake_.run_count();  // ids are assigned in order
  ASSERT_TRUE(fake_.run(plan_run).has_value());
  fake_.remove_run(plan_run);
  fake_.fail_next(502, 1, "", "get_plan/");
  ASSERT_TRUE(cycle(PollKind::kFull).error.has_value());
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 0);
}

TEST_F(PollerTest, RetryAfterIsHonoured) {
  start();
  add_runs(2);
  fake_.fail_next(429, 1, "1", "get_runs");
  const CycleOutcome out = cycle(PollKind::kActive);
  ASSERT_FALSE(out.error) << *out.error;
  const auto reqs = fake_.requests();
  ASSERT_GE(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].status, 429);
  EXPECT_EQ(reqs[1].endpoint, "get_runs");
  EXPECT_EQ(clock_.sleeps(), std::vector<std::chrono::milliseconds>{std::chrono::seconds(1)});
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 2);
}

TEST_F(PollerTest, AWebhookOnlyRunIsFilledByGetRun) {
  start();
  // A run inside a completed plan: no active listing covers it.
  auto plan = fake_.add_plan(1, "Old plan", {{{"name", "Edge"}, {"passed_count", 4}}}, true);
  const std::int64_t run_id = fake_.run_count();
  webhook(
      testing::webhook_body("run.report_changed", run_id, fake_.now() - 10, R"(,"visible":true)"));
  ASSERT_FALSE(cycle(PollKind::kActive).error);
  EXPECT_EQ(fake_.count("get_run"), 1);
  EXPECT_EQ(text("SELECT name FROM runs WHERE run_id = " + std::to_string(run_id)), "Edge");
  EXPECT_EQ(count("SELECT plan_id FROM runs WHERE run_id = " + std::to_string(run_id)), plan["id"].get<std::int64_t>());
  EXPECT_EQ(count("SELECT report_visible FROM runs WHERE run_id = " + std::to_string(run_id)), 1);
  // Now polled: the next active cycle does not ask again.
  ASSERT_FALSE(cycle(PollKind::kActive).error);
  EXPECT_EQ(fake_.count("get_run"), 1);
}

TEST_F(PollerTest, WebhookNewerThanThePollWins) {
  start();
  const auto id = add_runs(1);
  fake_.update_run(id, {{"passed_count", 2}});
  // Received when it says it happened: a webhook is never observed later
  // than it arrived (rule 2), and the poll's Date is older.
  webhook(testing::webhook_body("run.completed", id, fake_.now() + 100, R"(,"passed":5)"),
          fake_.now() + 100);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  EXPECT_EQ(count("SELECT passed_count FROM runs WHERE run_id = " + std::to_string(id)), 5);
  EXPECT_EQ(text("SELECT state FROM runs WHERE run_id = " + std::to_string(id)), "completed");
}

TEST_F(PollerTest, PollNewerThanTheWebhookWins) {
  start();
  const auto id = add_runs(1);
  fake_.update_run(id, {{"passed_count", 2}});
  webhook(testing::webhook_body("run.completed", id, fake_.now() - 100, R"(,"passed":5)"));
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  EXPECT_EQ(count("SELECT passed_count FROM runs WHERE run_id = " + std::to_string(id)), 2);
  // The poll said is_completed = false, but state never moves back.
  EXPECT_EQ(text("SELECT state FROM runs WHERE run_id = " + std::to_string(id)), "completed");
}

TEST_F(PollerTest, BareArraysAndTheLegacyPrefix) {
  start();
  fake_.set_bare_arrays(true);
  fake_.set_legacy_prefix(true);
  add_runs(8);
  fake_.add_plan(1, "P", {{{"name", "x"}}});
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 9);
}

TEST_F(PollerTest, WrongCredentialsAreAConfigurationError) {
  start();
  client_.reset();
  TestRailClientOptions copts = fake_.client_options();
  copts.api_key = "wrong";
  client_ = TestRailClient::create(copts, clock_);
  poller_ = std::make_unique<Poller>(PollerOptions{{{1, "ID"}}}, *client_, *writer_, metrics_,
                                     null_logger(), clock_);
  const CycleOutcome out = cycle(PollKind::kActive);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_TRUE(out.config_error);
  EXPECT_NE(metrics_.render().find(R"(outcome="config_error")"), std::string::npos);
}

// Older servers answer bare arrays but still apply limit and offset: every
// page is read while one comes back full.
TEST_F(PollerTest, BareArraysArePagedByLimitAndOffset) {
  start();
  fake_.set_bare_arrays(true);
  add_runs(300);
  const CycleOutcome out = cycle(PollKind::kFull);
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 300);
  std::vector<std::string> listings;
  for (const auto& r : fake_.requests()) {
    if (r.endpoint == "get_runs" || r.endpoint == "get_plans") listings.push_back(r.uri);
  }
  EXPECT_EQ(listings, (std::vector<std::string>{"get_runs/1&limit=250&offset=0",
                                                "get_runs/1&limit=250&offset=250",
                                                "get_plans/1&limit=250&offset=0"}));
  EXPECT_EQ(fake_.count("get_run"), 0);  // nothing left for get_run to find
}

TEST_F(PollerTest, BarePagesStopOnAShortOneEvenWhenItIsEmpty) {
  start();
  fake_.set_bare_arrays(true);
  add_runs(500);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 500);
  EXPECT_EQ(fake_.count("get_runs"), 3);  // 250, 250, then an empty page
}

TEST_F(PollerTest, PlansInBareArraysArePagedToo) {
  start();
  fake_.set_bare_arrays(true);
  for (int i = 0; i < 251; ++i) fake_.add_plan(1, "P" + std::to_string(i), {{{"name", "r"}}});
  const CycleOutcome out = cycle(PollKind::kFull);
  ASSERT_FALSE(out.error) << *out.error;
  EXPECT_EQ(fake_.count("get_plans"), 2);
  EXPECT_EQ(fake_.count("get_plan"), 251);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE plan_id IS NOT NULL"), 251);
}

// A server that ignores offset answers the first page again: the listing
// cannot be trusted, so the cycle fails and deletes nothing.
void PollerTest::expect_a_repeated_page_fails_the_cycle(int runs) {
  start();
  const auto first = add_runs(runs);
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  fake_.remove_run(first);
  fake_.set_ignore_offset(true);
  fake_.clear_requests();
  const CycleOutcome out = cycle(PollKind::kFull);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_NE(out.error->find("get_runs answered page 2 the same as the one before"),
            std::string::npos)
      << *out.error;
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 0);
  EXPECT_EQ(fake_.count("get_run"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM poll_cycles WHERE error IS NOT NULL"), 1);
}

TEST_F(PollerTest, ABarePageThatRepeatsThePreviousOneFailsTheCycle) {
  fake_.set_bare_arrays(true);
  expect_a_repeated_page_fails_the_cycle(260);
}

TEST_F(PollerTest, APaginatedPageThatRepeatsThePreviousOneFailsTheCycle) {
  expect_a_repeated_page_fails_the_cycle(7);
}

// A poll page is observed at its Date, but never later than it arrived:
// a server whose clock runs ahead cannot pin a run either.
TEST_F(PollerTest, APageIsObservedNoLaterThanItArrived) {
  start();
  std::int64_t local = fake_.now();
  clock_.set_unix_seconds(local);  // our clock, read when the page arrives
  const auto id = add_runs(1);
  fake_.set_now(local + 86400);  // the server's clock a day ahead
  ASSERT_FALSE(cycle(PollKind::kFull).error);
  EXPECT_EQ(count("SELECT details_at FROM runs WHERE run_id = " + std::to_string(id)), local);
  // So a webhook a minute later still wins.
  local += 60;
  webhook(testing::webhook_body("run.started", id, local, R"(,"title":"Renamed")"), local);
  EXPECT_EQ(text("SELECT name FROM runs WHERE run_id = " + std::to_string(id)), "Renamed");
}

TEST(PollPlan, RunsToRefresh) {
  const std::vector<KnownRun> known = {
      {1, RunState::kActive, true},    {2, RunState::kCompleted, true},
      {3, RunState::kCompleted, false}, {4, RunState::kDeleted, false},
      {5, RunState::kActive, true},    {6, RunState::kAborted, true},
  };
  const std::unordered_set<std::int64_t> listed = {5};
  EXPECT_EQ(runs_to_refresh(known, listed, PollKind::kActive), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(runs_to_refresh(known, listed, PollKind::kFull), (std::vector<std::int64_t>{1, 2, 3, 6}));
}

TEST(PollStaleAfter, ThreeIntervalsAndAMinute) {
  using namespace std::chrono_literals;
  EXPECT_EQ(poll_stale_after(60s), 240s);
  EXPECT_EQ(poll_stale_after(5min), 960s);
  EXPECT_EQ(poll_stale_after(250ms), 60s);
}

}  // namespace
}  // namespace runsync
