// Write-back commands executed against the fake TestRail server.
#include "daemon/testrail/outbox_worker.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <thread>

#include "core/webhook_event.h"
#include "daemon/http/http_client.h"
#include "daemon/testrail/poller.h"
#include "storage/outbox.h"
#include "storage/store.h"
#include "support/events.h"
#include "support/fake_clock.h"
#include "support/fake_testrail.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using runsync::test::FakeTestRail;
using runsync::testing::FakeClock;
using runsync::testing::TempDir;
using runsync::testing::wait_until;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.add_project(1);
    auto store = Store::open(dir_.file("mirror.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    writer_ = std::make_unique<Writer>(std::move(store).value(), Writer::Options{});
    TestRailClientOptions copts = fake_.client_options();
    copts.request_timeout = 2s;
    copts.max_backoff = 1s;
    copts.jitter_seed = 3;
    clock_.set_unix_seconds(fake_.now());  // our clock agrees with the server's
    client_ = std::make_unique<TestRailClient>(copts, http_, clock_);
  }

  void start_worker() {
    OutboxWorker::Options options;
    options.tick = 20ms;
    options.transient_retry = 200ms;
    options.projects = {1};
    worker_ = std::make_unique<OutboxWorker>(dir_.file("mirror.db"), *client_, *writer_, metrics_,
                                             null_logger(), clock_, options);
    thread_ = std::thread([this] { worker_->run(); });
  }

  void TearDown() override {
    if (worker_) worker_->stop();
    if (thread_.joinable()) thread_.join();
    if (writer_) writer_->stop();
  }

  std::int64_t queue(CommandKind kind, std::int64_t target, nlohmann::json body = nlohmann::json::object()) {
    OutboxCommand c;
    c.kind = kind;
    c.target = target;
    c.body = std::move(body);
    std::int64_t id = 0;
    EXPECT_TRUE(writer_
                    ->run([&](Store& s) -> Status {
                      auto r = s.outbox().queue(c, clock_.unix_seconds());
                      if (!r) return r.status();
                      id = r.value();
                      return Status::ok();
                    })
                    .is_ok());
    return id;
  }

  // Waits for command `id` to end while time passes on the clock (5 ms
  // each look), so the worker's backoffs end.
  CommandStatus wait_final(std::int64_t id) {
    CommandStatus last;
    wait_until(
        [&] {
          clock_.advance(5ms);
          auto row = read_command(dir_.file("mirror.db"), id);
          if (!row || !row.value()) return false;
          last = *row.value();
          return last.state == CommandState::kDone || last.state == CommandState::kFailed ||
                 last.state == CommandState::kUnknown;
        },
        15s);
    return last;
  }

  std::int64_t count(const std::string& sql) {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }

  TempDir dir_;
  FakeTestRail fake_;
  Metrics metrics_;
  HttpClient http_;
  FakeClock clock_;  // the client's waits pass at once
  FakeClock held_clock_{FakeClock::Sleeps::kUntilMoved};  // waits last until a stop
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<TestRailClient> client_;
  std::unique_ptr<OutboxWorker> worker_;
  std::thread thread_;
};

TEST_F(OutboxTest, EachCommandEndToEndIsAppliedToTheMirror) {
  start_worker();
  const auto add = queue(CommandKind::kAddRun, 1, {{"name", "Nightly"}, {"suite_id", 3}});
  const CommandStatus added = wait_final(add);
  ASSERT_EQ(added.state, CommandState::kDone) << added.last_error.value_or("");
  const auto run_id = nlohmann::json::parse(*added.result)["id"].get<std::int64_t>();
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE run_id = " + std::to_string(run_id) +
                  " AND name = 'Nightly' AND state = 'active'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM run_changes WHERE source = 'api'"), 1);

  EXPECT_EQ(wait_final(queue(CommandKind::kUpdateRun, run_id, {{"name", "Nightly 2"}})).state, CommandState::kDone);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'Nightly 2'"), 1);
  EXPECT_EQ(wait_final(queue(CommandKind::kCloseRun, run_id)).state, CommandState::kDone);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'completed' AND is_completed = 1"), 1);
  EXPECT_EQ(wait_final(queue(CommandKind::kDeleteRun, run_id)).state, CommandState::kDone);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE state = 'deleted'"), 1);
  EXPECT_FALSE(fake_.run(run_id).has_value());
  EXPECT_EQ(count("SELECT count(*) FROM run_changes WHERE source = 'api'"), 4);
}

// SPEC §6 rule 2 for write-back answers: an answer is observed at the
// server's Date but never later than it arrived, so a server whose clock
// runs an hour ahead does not pin the run's details for that hour.
TEST_F(OutboxTest, AnAnswerFromAServerWhoseClockRunsAheadPinsNothing) {
  const std::int64_t local = clock_.unix_seconds();
  fake_.set_now(local + 3600);
  start_worker();
  const CommandStatus added =
      wait_final(queue(CommandKind::kAddRun, 1, {{"name", "Nightly"}, {"suite_id", 3}}));
  ASSERT_EQ(added.state, CommandState::kDone) << added.last_error.value_or("");
  const auto run_id = nlohmann::json::parse(*added.result)["id"].get<std::int64_t>();
  ASSERT_EQ(wait_final(queue(CommandKind::kUpdateRun, run_id, {{"name", "Renamed"}})).state,
            CommandState::kDone);
  EXPECT_LE(count("SELECT details_at FROM runs WHERE run_id = " + std::to_string(run_id)),
            local + 60);

  // A webhook a little later renames the run again, and is taken.
  const std::string body =
      testing::webhook_body("run.started", run_id, local + 61, R"(,"title":"From the webhook")");
  const WebhookDelivery d = testing::delivery(body, local + 61, "test:" + body);
  std::optional<WebhookResult> result;
  ASSERT_TRUE(writer_->run([&](Store& s) -> Status {
    auto r = s.journal().apply(d);
    if (!r) return r.status();
    result = r.value();
    return Status::ok();
  }).is_ok());
  EXPECT_EQ(result, WebhookResult::kApplied);
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'From the webhook'"), 1);
}

TEST_F(OutboxTest, ABadRequestFailsWithTheApisErrorVerbatim) {
  start_worker();
  const CommandStatus st = wait_final(queue(CommandKind::kUpdateRun, 4242, {{"name", "x"}}));
  EXPECT_EQ(st.state, CommandState::kFailed);
  EXPECT_EQ(st.last_error.value_or(""), "Field :run_id is not a valid test run.");
  EXPECT_EQ(fake_.count("update_run"), 1);
}

// An answer that is valid JSON up to a NUL byte is not read (it could hide
// anything after it): the API took the command, and the next poll brings
// the run.
TEST_F(OutboxTest, AnAnswerWithANulByteIsNotRead) {
  const std::int64_t run_id = fake_.add_run({{"project_id", 1}, {"name", "Nightly"}})["id"];
  const std::string answer = R"({"id":)" + std::to_string(run_id) + R"(,"name":"Taken"})";
  FakeTestRail::Fault fault;
  fault.status = 200;
  fault.body = answer + std::string(1, '\0') + "garbage";
  fault.uri_contains = "update_run";
  fake_.push_fault(fault);
  start_worker();
  const CommandStatus st =
      wait_final(queue(CommandKind::kUpdateRun, run_id, {{"name", "Renamed"}}));
  EXPECT_EQ(st.state, CommandState::kDone);
  EXPECT_EQ(st.last_error.value_or(""),
            "the API answered 200 with a body runsync cannot read (body is not valid JSON: it "
            "holds a NUL byte at offset " +
                std::to_string(answer.size()) + "); the next poll will bring the run");
  EXPECT_FALSE(st.result.has_value());
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE name = 'Taken'"), 0);
}

TEST_F(OutboxTest, RateLimitedThenSucceeds) {
  fake_.fail_next(429, 1, "1", "add_run");
  start_worker();
  const CommandStatus st = wait_final(queue(CommandKind::kAddRun, 1, {{"name", "After 429"}}));
  EXPECT_EQ(st.state, CommandState::kDone) << st.last_error.value_or("");
  EXPECT_EQ(fake_.count("add_run"), 2);
  EXPECT_EQ(fake_.run_count(), 1u);
  EXPECT_EQ(clock_.sleeps(), std::vector<std::chrono::milliseconds>{1s});  // the Retry-After
}

TEST_F(OutboxTest, ALostAnswerEndsUnknownAndIsNotRepeated) {
  fake_.add_run({{"project_id", 1}, {"name", "existing"}});
  fake_.drop_next("close_run");
  start_worker();
  const CommandStatus st = wait_final(queue(CommandKind::kCloseRun, 1));
  EXPECT_EQ(st.state, CommandState::kUnknown);
  // Later commands still run, the unknown one is not sent again.
  EXPECT_EQ(wait_final(queue(CommandKind::kAddRun, 1, {{"name", "next"}})).state, CommandState::kDone);
  EXPECT_EQ(fake_.count("close_run"), 1);
  EXPECT_EQ(count("SELECT attempts FROM outbox WHERE command = 'close_run'"), 1);
}

TEST_F(OutboxTest, AnUnknownAddRunIsResolvedByTheNextPoll) {
  fake_.drop_next("add_run");
  start_worker();
  const auto id = queue(CommandKind::kAddRun, 1, {{"name", "Lost answer"}});
  ASSERT_EQ(wait_final(id).state, CommandState::kUnknown);
  ASSERT_EQ(fake_.run_count(), 1u);  // the server did create it
  Poller poller(PollerOptions{{{1, "ID"}}}, *client_, *writer_, metrics_, null_logger(), clock_);
  ASSERT_FALSE(poller.run_cycle({1, "ID"}, PollKind::kActive).error);
  CommandStatus st;
  ASSERT_TRUE(wait_until([&] {
    st = *read_command(dir_.file("mirror.db"), id).value();
    return st.state == CommandState::kDone;
  }, 10s)) << (st.state ? command_state_name(*st.state) : "?");
  EXPECT_EQ(nlohmann::json::parse(*st.result)["id"], fake_.run(1).value()["id"]);
  EXPECT_EQ(fake_.count("add_run"), 1);
}

TEST_F(OutboxTest, CommandsRunInOrderAndATransientFailureHoldsTheLine) {
  fake_.fail_next(503, 5, "", "add_run");  // the client gives up; the worker retries later
  const auto a = queue(CommandKind::kAddRun, 1, {{"name", "first"}});
  const auto b = queue(CommandKind::kAddRun, 1, {{"name", "second"}});
  const auto c = queue(CommandKind::kAddRun, 1, {{"name", "third"}});
  start_worker();
  EXPECT_EQ(wait_final(c).state, CommandState::kDone);
  EXPECT_EQ(wait_final(a).state, CommandState::kDone);
  EXPECT_EQ(wait_final(b).state, CommandState::kDone);
  std::vector<std::string> names;
  for (const auto& r : fake_.requests()) {
    if (r.endpoint == "add_run" && r.status == 200) names.push_back(nlohmann::json::parse(r.body)["name"]);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"first", "second", "third"}));
}

TEST_F(OutboxTest, RowsInsertedWithPlainSqlAreValidated) {
  {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO outbox (command, target, body) VALUES ('add_run', 1, '{\"name\": 5}')");
    db.exec("INSERT INTO outbox (command, target, body) VALUES ('close_run', 1, 'not json')");
    db.exec("INSERT INTO outbox (command, target) VALUES ('add_run', 1)");
    // Valid JSON up to a NUL byte, then more text.
    db.exec("INSERT INTO outbox (command, target, body) "
            "VALUES ('add_run', 1, '{\"name\": \"x\"}' || char(0) || 'tail')");
  }
  fake_.add_run({{"project_id", 1}, {"name", "r"}});
  start_worker();
  EXPECT_EQ(wait_final(1).state, CommandState::kFailed);
  EXPECT_EQ(wait_final(2).state, CommandState::kFailed);
  EXPECT_EQ(wait_final(3).state, CommandState::kFailed);
  EXPECT_EQ(wait_final(4).state, CommandState::kFailed);
  EXPECT_EQ(fake_.request_count(), 0u);
  EXPECT_NE(read_command(dir_.file("mirror.db"), 1).value()->last_error->find("name"), std::string::npos);
  EXPECT_EQ(*read_command(dir_.file("mirror.db"), 4).value()->last_error,
            "add_run: body is not valid JSON: it holds a NUL byte at offset 13");
}

TEST_F(OutboxTest, ACommandLeftSendingBecomesUnknownAtStart) {
  const auto id = queue(CommandKind::kCloseRun, 7);
  ASSERT_TRUE(writer_->run([&](Store& s) {
    return s.outbox().update(id, CommandState::kSending, true, std::nullopt, std::nullopt, 1);
  }).is_ok());
  start_worker();
  EXPECT_EQ(wait_final(id).state, CommandState::kUnknown);
  EXPECT_EQ(fake_.request_count(), 0u);
}

TEST_F(OutboxTest, ACommandWaitingForTheRequestBudgetStaysPendingAfterAStop) {
  // One request a minute: the first command takes it, the second waits.
  std::atomic<bool> waiting{false};
  TestRailClientOptions copts = fake_.client_options();
  copts.max_requests_per_minute = 1;
  client_ = TestRailClient::create(copts, held_clock_, [&](const ApiEvent& e) {
    if (e.kind == ApiEvent::Kind::kWait && e.reason == "rate_limit") waiting = true;
  });
  fake_.add_run({{"project_id", 1}, {"name", "r"}});
  start_worker();
  ASSERT_EQ(wait_final(queue(CommandKind::kAddRun, 1, {{"name", "first"}})).state, CommandState::kDone);
  const auto second = queue(CommandKind::kCloseRun, 1);
  ASSERT_TRUE(wait_until([&] { return waiting.load(); }, 10s));
  EXPECT_EQ(read_command(dir_.file("mirror.db"), second).value()->state, CommandState::kPending);
  // The writer stops first, as it may when the daemon stops: nothing needs
  // recording for a command that was never sent.
  writer_->stop();
  worker_->stop();
  client_->stop();
  thread_.join();
  const CommandStatus st = *read_command(dir_.file("mirror.db"), second).value();
  EXPECT_EQ(st.state, CommandState::kPending);
  EXPECT_EQ(st.attempts, 0);
  EXPECT_EQ(fake_.count("close_run"), 0);
}

TEST_F(OutboxTest, RowsInsertedWithSqlGetTheCliRefusalsAndSendNothing) {
  fake_.add_run({{"project_id", 1}, {"name", "plain"}});  // run 1
  ASSERT_TRUE(writer_
                  ->run([&](Store& s) -> Status {
                    // Run 2 is part of a plan, run 3 was deleted.
                    Observation plan_run;
                    plan_run.run_id = 2;
                    plan_run.source = Source::kPoll;
                    plan_run.observed_at = 10;
                    plan_run.set(Field::kProjectId, std::int64_t{1});
                    plan_run.set(Field::kPlanId, std::int64_t{77});
                    plan_run.state = StateClaim::kActive;
                    if (auto r = s.runs().apply(plan_run, 10); !r) return r.status();
                    Observation doomed = plan_run;
                    doomed.run_id = 3;
                    doomed.set(Field::kPlanId, Value{});
                    if (auto r = s.runs().apply(doomed, 10); !r) return r.status();
                    if (auto r = s.runs().apply(deletion_observation(3, Source::kPoll, 11), 11); !r)
                      return r.status();
                    return Status::ok();
                  })
                  .is_ok());
  {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READWRITE);
    db.exec(
        "INSERT INTO outbox (command, target, body) VALUES ('add_run', 9, '{\"name\": \"x\"}')");
    db.exec("INSERT INTO outbox (command, target) VALUES ('close_run', 10.7)");
    db.exec("INSERT INTO outbox (command, target) VALUES ('close_run', 2)");
    db.exec("INSERT INTO outbox (command, target) VALUES ('delete_run', 3)");
    db.exec("INSERT INTO outbox (command, target) VALUES ('close_run', 'one')");
  }
  start_worker();
  const char* expected[] = {
      "project 9 is not a configured [[project]]",
      "close_run: target must be a positive run id, not 10.7",
      "run 2 belongs to test plan 77; TestRail changes plan runs through the plan's entries",
      "run 3 is deleted",
      "close_run: target must be a positive run id, not one",
  };
  for (std::int64_t id = 1; id <= 5; ++id) {
    const CommandStatus st = wait_final(id);
    EXPECT_EQ(st.state, CommandState::kFailed) << id;
    EXPECT_EQ(st.last_error.value_or(""), expected[id - 1]) << id;
  }
  // A later valid command still runs, and nothing else was sent.
  EXPECT_EQ(wait_final(queue(CommandKind::kCloseRun, 1)).state, CommandState::kDone);
  EXPECT_EQ(fake_.request_count(), 1u);
  EXPECT_EQ(fake_.count("close_run"), 1);
}

TEST(OutboxCommand, Validation) {
  auto check = [](CommandKind kind, std::int64_t target, nlohmann::json body) {
    OutboxCommand c;
    c.kind = kind;
    c.target = target;
    c.body = std::move(body);
    return validate_command(c);
  };
  EXPECT_TRUE(check(CommandKind::kAddRun, 1, {{"name", "n"}, {"suite_id", 2}}).is_ok());
  EXPECT_TRUE(check(CommandKind::kAddRun, 1, {{"name", "n"}, {"include_all", false}, {"case_ids", {1, 2}}}).is_ok());
  EXPECT_FALSE(check(CommandKind::kAddRun, 1, {{"suite_id", 2}}).is_ok());
  EXPECT_FALSE(check(CommandKind::kAddRun, 0, {{"name", "n"}}).is_ok());
  EXPECT_FALSE(check(CommandKind::kAddRun, 1, {{"name", "n"}, {"case_ids", {1}}}).is_ok());
  EXPECT_FALSE(check(CommandKind::kAddRun, 1, {{"name", "n"}, {"bogus", 1}}).is_ok());
  EXPECT_FALSE(check(CommandKind::kUpdateRun, 5, nlohmann::json::object()).is_ok());
  EXPECT_FALSE(check(CommandKind::kUpdateRun, 5, {{"suite_id", 1}}).is_ok());
  EXPECT_TRUE(check(CommandKind::kCloseRun, 5, nlohmann::json::object()).is_ok());
  EXPECT_FALSE(check(CommandKind::kCloseRun, 5, {{"name", "x"}}).is_ok());
  EXPECT_FALSE(check(CommandKind::kDeleteRun, -1, nlohmann::json::object()).is_ok());
}

}  // namespace
}  // namespace runsync
