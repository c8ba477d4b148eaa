// End-to-end: TestRail's own webhooks (SPEC §4a) against the built binary
// and the fake TestRail. A delivery is a hint: the mirror must follow what
// the API says (polling every hour, only the hint can make it), in every
// content type, for runs, plans, projects and deletions, and a burst must
// cost one request per refresh window. How soon a refresh is due is checked
// on a fake clock in tests/daemon/testrail/refresher_test.cc.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "support/config_builder.h"
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
using runsync::testing::TestResponse;
using runsync::testing::wait_for_listen_port;
using runsync::testing::wait_until;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kSecret = "hint-secret-123";

class TestRailWebhookE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.add_project(1);
    fake_.add_project(2);
    run_ = fake_.add_run({{"project_id", 1}, {"name", "Nightly"}})["id"].get<std::int64_t>();
  }

  std::string write_config(const std::string& extra = "") {
    const std::string key = dir_.write("api-key", "fake-api-key\n");
    const std::string secret = dir_.write("hint-secret", std::string(kSecret) + "\n");
    return ConfigBuilder(db())
        .testrail(fake_.base_url(), key)
        .set("testrail", "poll_interval", "\"1h\"")
        .set("testrail", "max_requests_per_minute", std::to_string(budget_))
        .set("testrail_webhook", "secret_file", ConfigBuilder::quoted(secret))
        .set("testrail_webhook", "min_refresh_interval", "\"1s\"")
        .lines("testrail_webhook", extra)
        .write(dir_);
  }

  // Starts serve and waits for its first full poll to have stored run_.
  void start(const std::string& extra = "") {
    const std::string config = write_config(extra);
    daemon_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{RUNSYNC_BINARY, "serve", "--config", config},
        dir_.file("serve" + std::to_string(++starts_) + ".log"));
    port_ = wait_for_listen_port(*daemon_);
    ASSERT_NE(port_, 0) << daemon_->log();
    client_ = std::make_unique<TestHttpClient>(port_);
    ASSERT_TRUE(wait_until([&] { return column(run_, "name") == "Nightly"; }, 20s))
        << daemon_->log();
  }

  void stop() {
    daemon_->signal(SIGTERM);
    auto status = daemon_->wait(10s);
    ASSERT_TRUE(status.has_value()) << daemon_->log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon_->log();
  }

  std::string db() const { return dir_.file("mirror.db"); }

  // A column of a run's row as text; "" when there is no row.
  std::string column(std::int64_t run, const std::string& name) {
    try {
      SQLite::Database read(db(), SQLite::OPEN_READONLY);
      SQLite::Statement st(read, "SELECT " + name + " FROM runs WHERE run_id = ?");
      st.bind(1, run);
      return st.executeStep() ? st.getColumn(0).getString() : "";
    } catch (const std::exception&) {
      return "";
    }
  }

  std::int64_t pending() {
    SQLite::Database read(db(), SQLite::OPEN_READONLY);
    return read.execAndGet("SELECT count(*) FROM pending_refreshes").getInt64();
  }

  // Changes run `run` in the fake, a little later in TestRail's time.
  void change(std::int64_t run, const nlohmann::json& patch) {
    fake_.set_now(fake_.now() + 10);
    fake_.update_run(run, patch);
  }

  TestResponse hint(const std::string& body, const std::string& content_type = "application/json",
                    const std::string& secret = kSecret) {
    Headers headers{{"Content-Type", content_type}};
    if (!secret.empty()) headers.emplace_back("X-Runsync-Secret", secret);
    return client_->post("/testrail/webhook", body, headers);
  }

  // Sends `body` and waits until `followed` holds; returns the seconds that
  // took (printed, never asserted), or nothing when it did not follow.
  std::optional<double> hint_and_wait(const std::string& body, const std::string& content_type,
                                      const std::function<bool()>& followed) {
    const auto sent = std::chrono::steady_clock::now();
    TestResponse r = hint(body, content_type);
    EXPECT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.body, R"({"result":"queued"})");
    if (!wait_until(followed, 10s)) return std::nullopt;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  }

  std::string metrics() { return client_->get("/metrics").body; }

  FakeTestRail fake_;
  TempDir dir_;
  std::int64_t run_ = 0;
  int budget_ = 600;
  int starts_ = 0;
  unsigned short port_ = 0;
  std::unique_ptr<ChildProcess> daemon_;
  std::unique_ptr<TestHttpClient> client_;
};

TEST_F(TestRailWebhookE2E, TheMirrorFollowsAHintInEveryContentType) {
  // A run per content type, so that no hint waits for another's window.
  const std::int64_t form_run =
      fake_.add_run({{"project_id", 1}, {"name", "Form"}})["id"].get<std::int64_t>();
  const std::int64_t text_run =
      fake_.add_run({{"project_id", 1}, {"name", "Text"}})["id"].get<std::int64_t>();
  start();
  ASSERT_TRUE(wait_until([&] { return column(text_run, "name") == "Text"; }, 20s));
  struct Case {
    const char* content_type;
    std::int64_t run;
    std::string body;
  };
  const Case cases[] = {
      {"application/json", run_, R"({"event":"run_updated","run_id":)" + std::to_string(run_) + "}"},
      {"application/x-www-form-urlencoded", form_run,
       "event=result_added&run_id=" + std::to_string(form_run) + "&project_id=1"},
      {"text/plain; charset=utf-8", text_run,
       R"({"run_id":")" + std::to_string(text_run) + R"(","project_id":"1"})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.content_type);
    change(c.run, {{"passed_count", 7}});
    auto took = hint_and_wait(c.body, c.content_type,
                              [&] { return column(c.run, "passed_count") == "7"; });
    ASSERT_TRUE(took.has_value()) << daemon_->log();
    std::cout << "hint (" << c.content_type << ") to mirror: " << *took * 1000 << " ms\n";
  }
  // A second change within the run's 1 s window is fetched when it ends.
  change(run_, {{"passed_count", 8}});
  auto again = hint_and_wait(cases[0].body, "application/json",
                             [&] { return column(run_, "passed_count") == "8"; });
  ASSERT_TRUE(again.has_value()) << daemon_->log();
  std::cout << "second hint within the window to mirror: " << *again * 1000 << " ms\n";
  ASSERT_TRUE(wait_until([&] { return pending() == 0; }, 5s));
  // The refresher counts a refresh just after committing it.
  std::string m;
  EXPECT_TRUE(wait_until(
      [&] {
        m = metrics();
        return m.find("runsync_hint_to_mirror_seconds_count 4") != std::string::npos &&
               m.find("runsync_hint_refreshes_total{kind=\"run\",outcome=\"changed\"} 4") !=
                   std::string::npos;
      },
      5s))
      << m;
  EXPECT_NE(m.find("runsync_testrail_hints_total{result=\"queued\"} 4"), std::string::npos) << m;
  EXPECT_NE(m.find("runsync_hint_pending_refreshes 0"), std::string::npos) << m;
  stop();
}

TEST_F(TestRailWebhookE2E, BadDeliveriesAreRefusedAndChangeNothing) {
  start();
  const std::string body = R"({"run_id":)" + std::to_string(run_) + "}";
  struct Case {
    TestResponse response;
    int status;
    const char* error;
  };
  const Case cases[] = {
      {hint(body, "application/json", ""), 401, "missing X-Runsync-Secret header"},
      {hint(body, "application/json", "wrong"), 401, "wrong X-Runsync-Secret"},
      {hint(R"({"event":"run_updated"})"), 400, "the hint names no run, plan or project"},
      {hint(R"({"run_id":"{{run.id}}"})"), 400, "run_id (at /run_id) must be a positive integer"},
      {hint("run_id=x", "application/x-www-form-urlencoded"), 400, "form field 'run_id'"},
      {hint("{not json"), 400, "body is not valid JSON"},
      {hint(body + std::string("\0garbage", 8)), 400,
       "body is not valid JSON: it holds a NUL byte at offset"},
      {hint("<run>1</run>", "application/xml"), 415, "unsupported Content-Type"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.response.status, c.status) << c.response.body;
    EXPECT_NE(c.response.body.find(c.error), std::string::npos) << c.response.body;
  }
  TestResponse get = client_->get("/testrail/webhook");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.header("Allow"), "POST");
  // A project runsync does not mirror: answered, nothing stored.
  TestResponse other = hint(R"({"run_id":5,"project_id":2})");
  EXPECT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(other.body, R"({"result":"ignored"})");
  EXPECT_EQ(pending(), 0);
  const std::string m = metrics();
  EXPECT_NE(m.find("runsync_testrail_hints_total{result=\"unauthorized\"} 2"), std::string::npos)
      << m;
  EXPECT_NE(m.find("runsync_testrail_hints_total{result=\"invalid\"} 6"), std::string::npos) << m;
  EXPECT_NE(m.find("runsync_testrail_hints_total{result=\"ignored\"} 1"), std::string::npos) << m;
  EXPECT_EQ(fake_.count("get_run"), 0);
  stop();
}

TEST_F(TestRailWebhookE2E, PlanProjectAndDeletionHintsAreRefreshedFromTheApi) {
  const auto plan = fake_.add_plan(1, "Release", {{{"project_id", 1}, {"name", "Plan run"}}});
  const std::int64_t plan_id = plan["id"].get<std::int64_t>();
  start();
  // The run add_plan stored comes right after run_.
  const std::int64_t plan_run = run_ + 1;
  ASSERT_EQ(fake_.run(plan_run).value().at("plan_id"), plan_id);
  ASSERT_TRUE(wait_until([&] { return column(plan_run, "name") == "Plan run"; }, 20s))
      << daemon_->log();
  // A plan hint: get_plan and its runs.
  change(plan_run, {{"failed_count", 4}});
  auto took = hint_and_wait("plan_id=" + std::to_string(plan_id), "application/x-www-form-urlencoded",
                            [&] { return column(plan_run, "failed_count") == "4"; });
  ASSERT_TRUE(took.has_value()) << daemon_->log();

  // A project hint: the project's active cycle finds a run created since.
  fake_.set_now(fake_.now() + 10);
  const std::int64_t created =
      fake_.add_run({{"project_id", 1}, {"name", "Created later"}})["id"].get<std::int64_t>();
  took = hint_and_wait(R"({"project_id":1})", "application/json",
                       [&] { return column(created, "name") == "Created later"; });
  ASSERT_TRUE(took.has_value()) << daemon_->log();

  // A deletion: get_run says the run is gone, and the mirror keeps a tombstone.
  fake_.set_now(fake_.now() + 10);
  fake_.remove_run(run_);
  took = hint_and_wait(R"({"run_id":)" + std::to_string(run_) + "}", "application/json",
                       [&] { return column(run_, "state") == "deleted"; });
  ASSERT_TRUE(took.has_value()) << daemon_->log();
  EXPECT_TRUE(wait_until(
      [&] {
        return daemon_->log().find("marked deleted (TestRail webhook hint)") != std::string::npos;
      },
      5s))
      << daemon_->log();

  // An id TestRail never had leaves no row behind.
  EXPECT_EQ(hint(R"({"run_id":987654})").status, 202);
  ASSERT_TRUE(wait_until([&] { return pending() == 0; }, 5s)) << daemon_->log();
  EXPECT_EQ(column(987654, "state"), "");
  stop();
}

TEST_F(TestRailWebhookE2E, ABurstOfHintsCostsACoupleOfRequestsWithinTheBudget) {
  budget_ = 60;
  start();
  fake_.clear_requests();
  const auto burst_start = std::chrono::steady_clock::now();
  const std::string body = R"({"run_id":)" + std::to_string(run_) + "}";
  // 200 results land on one run: TestRail fires a hint for each.
  for (int i = 1; i <= 200; ++i) {
    if (i % 50 == 0) change(run_, {{"passed_count", i}});
    ASSERT_EQ(hint(body).status, 202);
  }
  ASSERT_TRUE(wait_until([&] { return column(run_, "passed_count") == "200"; }, 10s))
      << daemon_->log();
  ASSERT_TRUE(wait_until([&] { return pending() == 0; }, 10s)) << daemon_->log();
  const int get_runs = fake_.count("get_run");
  // The 1 s refresh windows that began since the burst did, on the test's
  // own clock: however long the burst took, a refresh per hint exceeds them.
  const auto windows =
      std::chrono::ceil<std::chrono::seconds>(std::chrono::steady_clock::now() - burst_start)
          .count();
  std::cout << "200 hints for one run: " << get_runs << " get_run requests, "
            << fake_.request_count() << " API requests in all, over " << windows
            << " refresh windows\n";
  EXPECT_GE(get_runs, 1);
  // One refresh when the burst starts, then at most one per 1 s window while
  // it lasts (the last one follows the last hint).
  EXPECT_LE(get_runs, 1 + windows);
  // The budget holds over any minute, hints and polling together (the fake
  // stamps a request when it reads it, a little after its slot was granted).
  const auto requests = fake_.requests();
  for (std::size_t i = 0; i + budget_ < requests.size(); ++i) {
    EXPECT_GE(requests[i + budget_].at - requests[i].at, 60s - 100ms);
  }
  stop();
}

TEST_F(TestRailWebhookE2E, APendingHintSurvivesARestart) {
  start();
  change(run_, {{"retest_count", 3}});
  // TestRail is slow: the refresh is still waiting for it when runsync stops.
  fake_.delay_next(30s, "get_run");
  EXPECT_EQ(hint(R"({"run_id":)" + std::to_string(run_) + "}").status, 202);
  ASSERT_TRUE(wait_until([&] { return fake_.count("get_run") >= 1; }, 5s)) << daemon_->log();
  stop();
  EXPECT_EQ(pending(), 1);
  EXPECT_NE(column(run_, "retest_count"), "3");

  auto status =
      run_command({RUNSYNC_BINARY, "status", "--json", "--config", dir_.file("runsync.toml")});
  const auto j = nlohmann::json::parse(status.out);
  EXPECT_EQ(j.at("pending_refreshes").get<std::int64_t>(), 1) << status.out;
  EXPECT_TRUE(j.at("oldest_pending_refresh_at").is_number_integer()) << status.out;

  fake_.clear_requests();
  start();
  ASSERT_TRUE(wait_until([&] { return column(run_, "retest_count") == "3"; }, 10s))
      << daemon_->log();
  ASSERT_TRUE(wait_until([&] { return pending() == 0; }, 5s));
  // The stored hint was refreshed (the first poll lists runs, never get_run).
  EXPECT_EQ(fake_.count("get_run"), 1);
  stop();
}

}  // namespace
}  // namespace runsync
