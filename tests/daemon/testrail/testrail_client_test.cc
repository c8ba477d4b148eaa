#include "daemon/testrail/testrail_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/http/http_client.h"
#include "support/fake_clock.h"
#include "support/fake_testrail.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using test::FakeTestRail;
using testing::FakeClock;

// --- collaborators ---------------------------------------------------------

// Answers from a script; records each request and the clock time it was sent.
class ScriptedTransport final : public HttpTransport {
 public:
  explicit ScriptedTransport(const Clock& clock) : clock_(clock) {}

  HttpResult send(const HttpRequest& request) override {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
    times_.push_back(clock_.now());
    if (script_.empty()) return answer(200, "{}");
    HttpResult r = std::move(script_.front());
    script_.pop_front();
    return r;
  }

  static HttpResult answer(int status, std::string body, std::string retry_after = "",
                           std::string date = "") {
    HttpResult r;
    r.response.status = status;
    r.response.body = std::move(body);
    r.response.retry_after = std::move(retry_after);
    r.response.date = std::move(date);
    return r;
  }
  static HttpResult transport_error(bool sent, bool timed_out = false) {
    HttpResult r;
    HttpError e;
    e.stage = sent ? HttpStage::kRead : HttpStage::kConnect;
    e.may_have_been_sent = sent;
    e.timed_out = timed_out;
    e.message = sent ? "read: timed out" : "connect: connection refused";
    r.error = e;
    return r;
  }

  void push(HttpResult r) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(r));
  }
  std::vector<HttpRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<Clock::TimePoint> times() {
    std::lock_guard lock(mu_);
    return times_;
  }

 private:
  const Clock& clock_;
  std::mutex mu_;
  std::deque<HttpResult> script_;
  std::vector<HttpRequest> requests_;
  std::vector<Clock::TimePoint> times_;
};

// Collects observer events; thread-safe.
class EventLog {
 public:
  ApiObserver observer() {
    return [this](const ApiEvent& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    };
  }
  std::vector<ApiEvent> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  int count(ApiEvent::Kind kind, const std::string& reason = "") {
    std::lock_guard lock(mu_);
    return static_cast<int>(std::count_if(events_.begin(), events_.end(), [&](const ApiEvent& e) {
      return e.kind == kind && (reason.empty() || e.reason == reason);
    }));
  }

 private:
  std::mutex mu_;
  std::vector<ApiEvent> events_;
};

using runsync::testing::wait_until;

TestRailClientOptions scripted_options() {
  TestRailClientOptions o;
  o.base_url = "https://example.testrail.io/";
  o.user = "ci@example.com";
  o.api_key = "key";
  o.max_requests_per_minute = 0;
  o.jitter_seed = 42;
  return o;
}

// --- HTTP dates and URLs -----------------------------------------------------

TEST(HttpDate, ParsesImfFixdate) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parse_http_date(" Tue, 14 Nov 2023 22:13:20 GMT "), 1700000000);
  EXPECT_EQ(parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"), 1709208000);
}

TEST(HttpDate, RejectsOtherForms) {
  for (const char* bad :
       {"", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "1700000000"}) {
    EXPECT_FALSE(parse_http_date(bad).has_value()) << bad;
  }
}

TEST(HttpDate, FormatRoundTrips) {
  EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  for (std::int64_t t : {0LL, 951782400LL, 1700000000LL, 1709208000LL, 4102444799LL}) {
    EXPECT_EQ(parse_http_date(format_http_date(t)), t) << format_http_date(t);
  }
}

TEST(ParseUrl, Forms) {
  auto u = parse_url("https://example.testrail.io/index.php?/api/v2/get_run/1");
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "example.testrail.io");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/index.php?/api/v2/get_run/1");

  u = parse_url("HTTP://127.0.0.1:8081");
  ASSERT_TRUE(u.has_value());
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->port, "8081");
  EXPECT_EQ(u->target, "/");

  u = parse_url("http://[::1]:9000?/x");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->target, "/?/x");

  for (const char* bad : {"ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:99999/",
                          "http://u@h/", "example.com"}) {
    EXPECT_FALSE(parse_url(bad).has_value()) << bad;
  }
}

// --- rate limiter ------------------------------------------------------------

// True when no 60 s window holds more than `budget` of `times`.
bool within_budget(std::vector<Clock::TimePoint> times, std::size_t budget) {
  std::sort(times.begin(), times.end());
  for (std::size_t i = 0; i + budget < times.size(); ++i) {
    if (times[i + budget] - times[i] < std::chrono::minutes(1)) return false;
  }
  return true;
}

TEST(RateLimiter, NeverExceedsItsBudget) {
  FakeClock clock;
  RateLimiter limiter(10, clock);
  std::atomic<bool> stop{false};
  std::vector<Clock::TimePoint> times;
  for (int i = 0; i < 35; ++i) {
    auto at = limiter.acquire(stop);
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(*at, clock.now());
    times.push_back(*at);
    clock.advance(milliseconds(500));  // requests take time too
  }
  EXPECT_TRUE(within_budget(times, 10));
  // Budget used fully: the 11th request starts exactly when the 1st leaves the window.
  EXPECT_EQ(times[10] - times[0], std::chrono::minutes(1));
  // 35 requests at 10/min need at least 3 full minutes.
  EXPECT_GE(times.back() - times.front(), std::chrono::minutes(3));
}

TEST(RateLimiter, SharedByThreads) {
  FakeClock clock;
  RateLimiter limiter(5, clock);
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Clock::TimePoint> times;
  auto worker = [&] {
    for (int i = 0; i < 8; ++i) {
      // The time the limiter counted (another thread's sleep may move the
      // fake clock on before this thread could read it).
      auto at = limiter.acquire(stop);
      ASSERT_TRUE(at.has_value());
      std::lock_guard lock(mu);
      times.push_back(*at);
    }
  };
  std::thread a(worker);
  std::thread b(worker);
  a.join();
  b.join();
  EXPECT_EQ(times.size(), 16u);
  EXPECT_TRUE(within_budget(times, 5));
}

TEST(RateLimiter, StopEndsTheWait) {
  const Clock& clock = real_clock();
  RateLimiter limiter(1, clock);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(limiter.acquire(stop).has_value());
  std::atomic<bool> waiting{false};
  std::thread t([&] {
    EXPECT_FALSE(limiter.acquire(stop, [&](milliseconds) { waiting = true; }).has_value());
  });
  ASSERT_TRUE(wait_until([&] { return waiting.load(); }, seconds(5)));
  // Left alone, the wait would end a minute later in a granted slot.
  stop = true;
  t.join();
}

TEST(RateLimiter, AHintTakesTheNextSlotBeforeRoutineRequests) {
  FakeClock clock(FakeClock::Sleeps::kUntilMoved);
  RateLimiter limiter(1, clock);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(limiter.acquire(stop).has_value());  // the budget is spent for a minute
  std::mutex mu;
  std::vector<std::pair<std::string, Clock::TimePoint>> order;
  auto take = [&](const char* who, RequestPriority priority) {
    auto at = limiter.acquire(stop, {}, priority);
    ASSERT_TRUE(at.has_value());
    std::lock_guard lock(mu);
    order.emplace_back(who, *at);
  };
  std::thread hint(take, "hint", RequestPriority::kHint);
  ASSERT_TRUE(wait_until([&] { return clock.sleepers() == 1; }, seconds(5)));
  // The slot frees while the hint still sleeps, and a routine request comes
  // first: it must leave the slot to the hint.
  clock.advance(std::chrono::minutes(1), /*wake=*/false);
  std::atomic<bool> routine_done{false};
  std::thread routine([&] {
    take("routine", RequestPriority::kRoutine);
    routine_done = true;
  });
  ASSERT_TRUE(wait_until([&] { return routine_done || clock.sleepers() == 2; }, seconds(5)));
  clock.advance(milliseconds(0));
  auto taken = [&] {
    std::lock_guard lock(mu);
    return order.size();
  };
  ASSERT_TRUE(wait_until([&] { return taken() >= 1; }, seconds(5)));
  clock.advance(std::chrono::minutes(1));
  hint.join();
  routine.join();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0].first, "hint");
  EXPECT_EQ(order[0].second, FakeClock::kStart + std::chrono::minutes(1));
  EXPECT_EQ(order[1].first, "routine");
  EXPECT_EQ(order[1].second, FakeClock::kStart + std::chrono::minutes(2));
}

TEST(RateLimiter, AFloodOfHintsLeavesRoutineRequestsEveryFourthSlot) {
  FakeClock clock(FakeClock::Sleeps::kUntilMoved);
  RateLimiter limiter(1, clock);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(limiter.acquire(stop).has_value());
  std::mutex mu;
  std::vector<std::string> order;
  auto taken = [&] {
    std::lock_guard lock(mu);
    return order.size();
  };
  std::thread routine([&] {
    ASSERT_TRUE(limiter.acquire(stop).has_value());
    std::lock_guard lock(mu);
    order.emplace_back("routine");
  });
  ASSERT_TRUE(wait_until([&] { return clock.sleepers() == 1; }, seconds(5)));
  // One hint after another, each waiting beside the routine request.
  std::vector<std::thread> hints;
  for (std::size_t i = 0; i < 4; ++i) {
    hints.emplace_back([&] {
      ASSERT_TRUE(limiter.acquire(stop, {}, RequestPriority::kHint).has_value());
      std::lock_guard lock(mu);
      order.emplace_back("hint");
    });
    ASSERT_TRUE(wait_until([&] { return clock.sleepers() == 2; }, seconds(5)));
    clock.advance(std::chrono::minutes(1));
    ASSERT_TRUE(wait_until([&] { return taken() == i + 1; }, seconds(5)));
    if (i < 3) {
      ASSERT_TRUE(wait_until([&] { return clock.sleepers() == 1; }, seconds(5)));
    }
  }
  clock.advance(std::chrono::minutes(1));
  routine.join();
  for (auto& t : hints) t.join();
  EXPECT_EQ(order, (std::vector<std::string>{"hint", "hint", "hint", "routine", "hint"}));
}

// SPEC §4a: under a flood of valid hints, a due poll cycle of 2,000 active
// runs (8 pages of get_runs and get_plans: 9 requests) still finishes
// within poll_interval = 30s at max_requests_per_minute = 180.
TEST(RateLimiter, APollCycleOf2000RunsFinishesWithinPollIntervalUnderAHintFlood) {
  FakeClock clock(FakeClock::Sleeps::kUntilMoved);
  RateLimiter limiter(180, clock);
  std::atomic<bool> stop{false};
  constexpr milliseconds kSlot(333);  // 180 a minute
  // The budget is spent, one slot freeing every kSlot.
  for (int i = 0; i < 180; ++i) {
    ASSERT_TRUE(limiter.acquire(stop).has_value());
    clock.advance(kSlot);
  }
  std::atomic<int> hints{0};
  std::atomic<int> routine{0};
  std::vector<std::thread> flood;
  for (int t = 0; t < 3; ++t) {
    flood.emplace_back([&] {
      while (limiter.acquire(stop, {}, RequestPriority::kHint)) ++hints;
    });
  }
  ASSERT_TRUE(wait_until([&] { return clock.sleepers() == 3; }, seconds(5)));
  const auto due = clock.now();
  std::vector<Clock::TimePoint> cycle;
  std::thread poll([&] {
    for (int request = 0; request < 9; ++request) {
      auto at = limiter.acquire(stop);
      if (!at) return;
      cycle.push_back(*at);
      ++routine;
    }
  });
  ASSERT_TRUE(wait_until([&] { return clock.sleepers() == 4; }, seconds(5)));
  // One slot frees at each step; the flood never stops asking.
  for (int step = 0; step < 300 && routine < 9; ++step) {
    const int taken = hints + routine;
    clock.advance(kSlot);
    ASSERT_TRUE(wait_until([&] { return hints + routine > taken; }, seconds(5)));
    ASSERT_TRUE(wait_until([&] { return clock.sleepers() == (routine < 9 ? 4 : 3); }, seconds(5)));
  }
  const int hints_meanwhile = hints;
  stop = true;
  clock.advance(kSlot);
  poll.join();
  for (auto& t : flood) t.join();
  ASSERT_EQ(cycle.size(), 9u);
  EXPECT_LE(cycle.back() - due, std::chrono::seconds(30));
  // The hints kept three slots of every four meanwhile.
  EXPECT_GE(hints_meanwhile, 3 * 8);
}

TEST(TestRailClient, RequestsStayWithinMaxRequestsPerMinute) {
  FakeClock clock;
  ScriptedTransport transport(clock);
  EventLog log;
  auto options = scripted_options();
  options.max_requests_per_minute = 6;
  TestRailClient client(options, transport, clock, log.observer());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client.get("get_run/1").is_ok());
    clock.advance(milliseconds(100));
  }
  EXPECT_TRUE(within_budget(transport.times(), 6));
  EXPECT_GT(log.count(ApiEvent::Kind::kWait, "rate_limit"), 0);
}

TEST(TestRailClient, RetriesCountAgainstTheBudget) {
  FakeClock clock;
  ScriptedTransport transport(clock);
  auto options = scripted_options();
  options.max_requests_per_minute = 2;
  options.max_read_attempts = 5;
  TestRailClient client(options, transport, clock);
  for (int i = 0; i < 4; ++i) transport.push(ScriptedTransport::answer(503, "{}"));
  ASSERT_TRUE(client.get("get_run/1").is_ok());
  EXPECT_EQ(transport.requests().size(), 5u);
  EXPECT_TRUE(within_budget(transport.times(), 2));
}

// --- request shape and answers (scripted) --------------------------------------

TEST(TestRailClient, BuildsTheRequest) {
  FakeClock clock;
  ScriptedTransport transport(clock);
  TestRailClient client(scripted_options(), transport, clock);
  ASSERT_TRUE(client.get("get_runs/1&is_completed=0").is_ok());
  ASSERT_TRUE(client.get("index.php?/api/v2/get_runs/1&limit=250&offset=250").is_ok());
  ASSERT_TRUE(client.post("close_run/5", json::object()).is_ok());
  const auto reqs = transport.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].url, "https://example.testrail.io/index.php?/api/v2/get_runs/1&is_completed=0");
  EXPECT_EQ(reqs[1].url,
            "https://example.testrail.io/index.php?/api/v2/get_runs/1&limit=250&offset=250");
  EXPECT_EQ(reqs[2].method, "POST");
  EXPECT_EQ(reqs[2].body, "{}");
  ASSERT_TRUE(reqs[0].basic_auth.has_value());
  EXPECT_EQ(reqs[0].basic_auth->first, "ci@example.com");
  EXPECT_EQ(reqs[0].basic_auth->second, "key");
  EXPECT_EQ(reqs[0].timeout, milliseconds(30'000));
}

TEST(TestRailClient, ServerDateIsParsed) {
  FakeClock clock;
  ScriptedTransport transport(clock);
  TestRailClient client(scripted_options(), transport, clock);
  transport.push(ScriptedTransport::answer(200, "{}", "", "Tue, 14 Nov 2023 22:13:20 GMT"));
  transport.push(ScriptedTransport::answer(200, "{}", "", "yesterday"));
  auto a = client.get("get_run/1");
  auto b = client.get("get_run/1");
  auto c = client.get("get_run/1");
  ASSERT_TRUE(a.is_ok() && b.is_ok() && c.is_ok());
  EXPECT_EQ(a->server_date, 1700000000);
  EXPECT_FALSE(b->server_date.has_value());
  EXPECT_FALSE(c->server_date.has_value());
}

TEST(TestRailClient, ErrorsThatAreNotRetried) {
  struct Case {
    int status;
    ApiErrorKind kind;
  };
  for (const Case& c : {Case{401, ApiErrorKind::kConfig}, Case{403, ApiErrorKind::kConfig},
                        Case{400, ApiErrorKind::kRejected}, Case{404, ApiErrorKind::kRejected},
                        Case{422, ApiErrorKind::kRejected}}) {
    FakeClock clock;
    ScriptedTransport transport(clock);
    TestRailClient client(scripted_options(), transport, clock);
    transport.push(ScriptedTransport::answer(c.status, R"({"error":"nope"})"));
    auto r = client.get("get_runs/1");
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.error().kind, c.kind) << c.status;
    EXPECT_EQ(r.error().http_status, c.status);
    EXPECT_EQ(r.error().message, "nope");
    EXPECT_EQ(r.error().attempts, 1);
    EXPECT_EQ(transport.requests().size(), 1u);
    EXPECT_TRUE(clock.sleeps().empty());
  }
}

TEST(TestRailClient, BackoffIsExponentialJitteredAndCapped) {
  FakeClock clock;
  ScriptedTransport transport(clock);
  EventLog log;
  auto options = scripted_options();
  options.max_read_attempts = 8;
  options.max_backoff = seconds(5);
  TestRailClient client(options, transport, clock, log.observer());
  for (int i = 0; i < 8; ++i) transport.push(ScriptedTransport::answer(500, "{}"));
  auto r = client.get("get_runs/1");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error().kind, ApiErrorKind::kTransient);
  EXPECT_EQ(r.error().http_status, 500);
  EXPECT_EQ(r.error().attempts, 8);
  const auto sleeps = clock.sleeps();
  ASSERT_EQ(sleeps.size(), 7u);
  for (std::size_t i = 0; i < sleeps.size(); ++i) {
    const milliseconds base = std::min(milliseconds(1000LL << i), milliseconds(5000));
    EXPECT_GE(sleeps[i], base / 2) << i;
    EXPECT_LE(sleeps[i], base) << i;
  }
  EXPECT_EQ(log.count(ApiEvent::Kind::kWait, "backoff"), 7);
  EXPECT_EQ(log.count(ApiEvent::Kind::kFailure), 1);
  EXPECT_EQ(log.count(ApiEvent::Kind::kAnswer), 8);
}

TEST(TestRailClient, RetriesTransientAnswersAndErrors) {
  FakeClock clock;
  ScriptedTransport transport(clock);
  TestRailClient client(scripted_options(), transport, clock);
  transport.push(ScriptedTransport::answer(409, R"({"error":"maintenance"})"));
  transport.push(ScriptedTransport::transport_error(/*sent=*/true, /*timed_out=*/true));
  transport.push(ScriptedTransport::answer(502, "<html>bad gateway</html>"));
  transport.push(ScriptedTransport::transport_error(/*sent=*/false));
  auto r = client.get("get_run/3");
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  EXPECT_EQ(transport.requests().size(), 5u);
  EXPECT_EQ(r->attempts, 5);
}

TEST(TestRailClient, TooManyRequestsWaitsRetryAfter) {
  struct Case {
    std::string retry_after;
    std::string date;
    milliseconds want;
  };
  const std::vector<Case> cases = {
      {"7", "", seconds(7)},
      {"", "", seconds(60)},         // default
      {"soon", "", seconds(60)},     // unusable
      {"100000", "", seconds(300)},  // capped
      {"Tue, 14 Nov 2023 22:13:50 GMT", "Tue, 14 Nov 2023 22:13:20 GMT", seconds(30)},
  };
  for (const auto& c : cases) {
    FakeClock clock;
    ScriptedTransport transport(clock);
    TestRailClient client(scripted_options(), transport, clock);
    transport.push(ScriptedTransport::answer(429, "{}", c.retry_after, c.date));
    ASSERT_TRUE(client.get("get_runs/1").is_ok());
    const auto sleeps = clock.sleeps();
    ASSERT_EQ(sleeps.size(), 1u) << c.retry_after;
    EXPECT_EQ(sleeps[0], c.want) << c.retry_after;
  }
}

TEST(TestRailClient, PostRetryPolicy) {
  struct Case {
    const char* name;
    HttpResult first;
    bool retried;
    ApiErrorKind kind_if_not;
  };
  const std::vector<Case> cases = {
      {"429 is a refusal", ScriptedTransport::answer(429, "{}", "1"), true, {}},
      {"503 is a refusal", ScriptedTransport::answer(503, "{}"), true, {}},
      {"409 is a refusal", ScriptedTransport::answer(409, "{}"), true, {}},
      {"not sent", ScriptedTransport::transport_error(false), true, {}},
      {"500 may be applied", ScriptedTransport::answer(500, "{}"), false,
       ApiErrorKind::kUnknownOutcome},
      {"502 may be applied", ScriptedTransport::answer(502, "{}"), false,
       ApiErrorKind::kUnknownOutcome},
      {"504 may be applied", ScriptedTransport::answer(504, "{}"), false,
       ApiErrorKind::kUnknownOutcome},
      {"timeout after sending", ScriptedTransport::transport_error(true, true), false,
       ApiErrorKind::kUnknownOutcome},
      {"400", ScriptedTransport::answer(400, R"({"error":"Field :name is required."})"), false,
       ApiErrorKind::kRejected},
  };
  for (const auto& c : cases) {
    FakeClock clock;
    ScriptedTransport transport(clock);
    TestRailClient client(scripted_options(), transport, clock);
    transport.push(c.first);
    auto r = client.post("add_run/1", json{{"name", "x"}});
    if (c.retried) {
      EXPECT_TRUE(r.is_ok()) << c.name;
      EXPECT_EQ(transport.requests().size(), 2u) << c.name;
    } else {
      ASSERT_FALSE(r.is_ok()) << c.name;
      EXPECT_EQ(r.error().kind, c.kind_if_not) << c.name;
      EXPECT_EQ(transport.requests().size(), 1u) << c.name;
    }
  }
}

TEST(TestRailClient, StopEndsARetryAfterWait) {
  const Clock& clock = real_clock();
  ScriptedTransport transport(clock);
  EventLog log;
  TestRailClient client(scripted_options(), transport, clock, log.observer());
  transport.push(ScriptedTransport::answer(429, "{}", "300"));
  std::optional<ApiResult<ApiResponse>> result;
  std::thread t([&] { result.emplace(client.get("get_runs/1")); });
  ASSERT_TRUE(wait_until([&] { return log.count(ApiEvent::Kind::kWait) > 0; }, seconds(5)));
  // Left alone, the wait would end in a retry that succeeds.
  client.stop();
  t.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(result->is_ok());
  EXPECT_EQ(result->error().kind, ApiErrorKind::kStopped);
  // Later calls fail at once.
  auto again = client.get("get_runs/1");
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.error().kind, ApiErrorKind::kStopped);
  EXPECT_EQ(transport.requests().size(), 1u);
}

// An answer runsync cannot read fails the call at once (no retry) with the
// reason, and is reported to the observer, which logs it.
TEST(TestRailClient, BadResponseBodies) {
  using namespace std::string_literals;
  const std::string nul = "body is not valid JSON: it holds a NUL byte at offset ";
  struct Case {
    const char* entity;  // "run" or "plan"
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {"run", "[1,2]", "get_run answer is not a JSON object"},
      {"run", "", "empty body"},
      {"run", "{\"id\":1", "body is not valid JSON"},
      {"run", "{\"id\":1}\0{\"id\":2}"s, nul + "8"},
      {"run", std::string(kLegacyAuthPrefix) + "{\"id\":1}\0"s, nul + "8"},
      {"plan", "[1]", "plan must be an object"},
      {"plan", "{\"id\":2,\"name\":\"P\"}\0garbage"s, nul + "19"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.entity) + " " + c.error);
    FakeClock clock;
    ScriptedTransport transport(clock);
    EventLog log;
    TestRailClient client(scripted_options(), transport, clock, log.observer());
    transport.push(ScriptedTransport::answer(200, c.body));
    std::optional<ApiError> error;
    if (std::string(c.entity) == "run") {
      if (auto run = client.get_run(1); !run) error = run.error();
    } else if (auto plan = client.get_plan(2); !plan) {
      error = plan.error();
    }
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->kind, ApiErrorKind::kBadResponse);
    EXPECT_EQ(error->message, c.error);
    EXPECT_EQ(transport.requests().size(), 1u);
    ASSERT_EQ(log.count(ApiEvent::Kind::kFailure), 1);
    for (const ApiEvent& e : log.events()) {
      if (e.kind == ApiEvent::Kind::kFailure) {
        EXPECT_EQ(e.error.value().message, c.error);
      }
    }
  }
}

// --- against the fake server ----------------------------------------------------

// A page of a listing read as the poll cycle reads it: GET, then core's parser.
StatusOr<RunsPage> runs_page(TestRailClient& client, std::string_view uri) {
  auto answer = client.get(uri);
  if (!answer) return Status::error(answer.error().describe());
  return parse_runs_page(answer->body);
}

StatusOr<PlansPage> plans_page(TestRailClient& client, std::string_view uri) {
  auto answer = client.get(uri);
  if (!answer) return Status::error(answer.error().describe());
  return parse_plans_page(answer->body);
}

class FakeServerTest : public ::testing::Test {
 protected:
  TestRailClientOptions options_for(const FakeTestRail& fake) {
    TestRailClientOptions o = fake.client_options();
    o.jitter_seed = 7;
    return o;
  }

  FakeClock clock_;  // backoff waits pass at once
  EventLog log_;
};

TEST_F(FakeServerTest, FollowsPaginationAcrossPages) {
  FakeTestRail::Options fo;
  fo.max_page_size = 2;
  FakeTestRail fake(fo);
  for (int i = 0; i < 5; ++i) fake.add_run({{"project_id", 1}});
  fake.add_run({{"project_id", 1}, {"is_completed", true}});  // filtered out
  fake.add_run({{"project_id", 2}});                          // other project
  fake.add_plan(1, "Release", {json::object()});              // plan runs are not listed
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);

  std::vector<std::int64_t> ids;
  std::string uri = "get_runs/1&is_completed=0";
  int pages = 0;
  for (;;) {
    auto answer = client.get(uri);
    ASSERT_TRUE(answer.is_ok()) << answer.error().describe();
    EXPECT_EQ(answer->observed_at, fake.now());
    auto page = parse_runs_page(answer->body);
    ASSERT_TRUE(page.is_ok()) << page.message();
    ++pages;
    for (const auto& run : page->runs) ids.push_back(run["id"].get<std::int64_t>());
    if (!page->next) break;
    uri = next_link_to_uri(*page->next);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ids, (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(fake.count("get_runs"), 3);
  const auto reqs = fake.requests();
  EXPECT_EQ(reqs[1].target, "/index.php?/api/v2/get_runs/1&is_completed=0&limit=2&offset=2");
  for (const auto& r : reqs) {
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.authorization.rfind("Basic ", 0), 0u);
  }
  // One keep-alive connection served every page.
  EXPECT_EQ(fake.connections_accepted(), 1u);
  EXPECT_EQ(http.connections_opened(), 1u);
}

// The body of an answer is exactly what was sent.
TEST_F(FakeServerTest, AnswerBodiesAreWhatWasSent) {
  FakeTestRail fake;
  for (int i = 0; i < 300; ++i) {
    fake.add_run({{"project_id", 1}, {"name", "run " + std::to_string(i)}});
  }
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);
  for (const char* uri : {"get_runs/1", "get_run/2", "get_runs/1&limit=1"}) {
    auto raw = client.get(uri);
    ASSERT_TRUE(raw.is_ok()) << raw.error().describe();
    EXPECT_TRUE(json::accept(raw->body)) << uri;
  }
  auto page = client.get("get_runs/1");
  ASSERT_TRUE(page.is_ok());
  auto observed = observe_runs_page(page->body, 1, 1, Source::kPoll);
  ASSERT_TRUE(observed.is_ok()) << observed.message();
  EXPECT_EQ(observed->observations.size(), 250u);
}

TEST_F(FakeServerTest, NextLinkWithLimitZeroIsRewritten) {
  FakeTestRail::Options fo;
  fo.max_page_size = 2;
  FakeTestRail fake(fo);
  fake.set_next_limit_zero(true);
  for (int i = 0; i < 3; ++i) fake.add_run({{"project_id", 1}});
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);
  auto first = runs_page(client, "get_runs/1");
  ASSERT_TRUE(first.is_ok()) << first.message();
  ASSERT_TRUE(first->next.has_value());
  EXPECT_NE(first->next->find("limit=0"), std::string::npos);
  // Followed unchanged, the server refuses it.
  auto raw = client.get(*first->next);
  ASSERT_FALSE(raw.is_ok());
  EXPECT_EQ(raw.error().http_status, 400);
  auto second = runs_page(client, next_link_to_uri(*first->next));
  ASSERT_TRUE(second.is_ok()) << second.message();
  EXPECT_EQ(second->runs.size(), 1u);
}

TEST_F(FakeServerTest, BareArrayAndLegacyPrefix) {
  FakeTestRail fake;
  fake.set_bare_arrays(true);
  fake.set_legacy_prefix(true);
  for (int i = 0; i < 3; ++i) fake.add_run({{"project_id", 1}});
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);
  auto page = runs_page(client, "get_runs/1");
  ASSERT_TRUE(page.is_ok()) << page.message();
  EXPECT_EQ(page->runs.size(), 3u);
  EXPECT_FALSE(page->next.has_value());
  auto run = client.get_run(2);
  ASSERT_TRUE(run.is_ok()) << run.error().describe();
  EXPECT_EQ(run->value["id"], 2);
}

TEST_F(FakeServerTest, PlansAndTheirRuns) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  const json plan = fake.add_plan(1, "Release 2.0", {{{"name", "Chrome"}}, {{"name", "Firefox"}}});
  fake.add_plan(1, "Old", {json::object()}, /*is_completed=*/true);
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);

  auto plans = plans_page(client, "get_plans/1&is_completed=0");
  ASSERT_TRUE(plans.is_ok()) << plans.message();
  ASSERT_EQ(plans->plans.size(), 1u);
  EXPECT_FALSE(plans->plans[0].contains("entries"));
  const auto plan_id = plans->plans[0]["id"].get<std::int64_t>();
  EXPECT_EQ(plan_id, plan["id"].get<std::int64_t>());

  auto detail = client.get_plan(plan_id);
  ASSERT_TRUE(detail.is_ok()) << detail.error().describe();
  EXPECT_EQ(detail->value.plan_name, "Release 2.0");
  ASSERT_EQ(detail->value.runs.size(), 2u);
  auto obs = observation_from_plan_run(detail->value.runs[1], detail->value, detail->observed_at,
                                       Source::kPoll);
  ASSERT_TRUE(obs.is_ok()) << obs.message();
  EXPECT_EQ(*obs->get(Field::kName), Value{std::string("Firefox")});
  EXPECT_EQ(*obs->get(Field::kPlanName), Value{std::string("Release 2.0")});
  EXPECT_EQ(*obs->get(Field::kPlanId), Value{plan_id});

  auto runs = runs_page(client, "get_runs/1");
  ASSERT_TRUE(runs.is_ok()) << runs.message();
  EXPECT_EQ(runs->runs.size(), 1u);  // get_runs leaves plan runs out

  auto missing = client.get_plan(999);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.error().kind, ApiErrorKind::kNotFound);
}

TEST_F(FakeServerTest, UnknownRunIsNotFound) {
  FakeTestRail fake;
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);
  auto r = client.get_run(12345);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error().kind, ApiErrorKind::kNotFound);
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_EQ(r.error().message, "Field :run_id is not a valid test run.");
  EXPECT_EQ(fake.count("get_run"), 1);
}

TEST_F(FakeServerTest, WrongCredentialsAreAConfigurationError) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  HttpClient http;
  auto options = options_for(fake);
  options.api_key = "wrong";
  TestRailClient client(options, http, clock_, log_.observer());
  auto r = client.get("get_runs/1");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error().kind, ApiErrorKind::kConfig);
  EXPECT_EQ(r.error().http_status, 401);
  EXPECT_NE(r.error().message.find("Authentication failed"), std::string::npos);
  EXPECT_EQ(fake.request_count(), 1u);  // not retried
  EXPECT_EQ(log_.count(ApiEvent::Kind::kFailure), 1);
}

TEST_F(FakeServerTest, TooManyRequestsHonoursRetryAfter) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  fake.fail_next(429, 1, "1");
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_, log_.observer());
  auto r = client.get_run(1);
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  const auto reqs = fake.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].status, 429);
  EXPECT_EQ(reqs[1].status, 200);
  // The retry came after the wait the server asked for.
  EXPECT_EQ(clock_.sleeps(), std::vector<milliseconds>{seconds(1)});
  EXPECT_EQ(log_.count(ApiEvent::Kind::kWait, "retry-after"), 1);
}

TEST_F(FakeServerTest, ServerErrorThenSuccess) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  fake.fail_next(500);
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_, log_.observer());
  auto r = client.get_run(1);
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(fake.count("get_run"), 2);
  ASSERT_EQ(clock_.sleeps().size(), 1u);
  EXPECT_GE(clock_.sleeps()[0], milliseconds(500));
  EXPECT_LE(clock_.sleeps()[0], milliseconds(1000));
}

TEST_F(FakeServerTest, TruncatedBodyIsAnErrorThenRetried) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}, {"description", std::string(4000, 'd')}});
  fake.truncate_next();
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_, log_.observer());
  auto r = client.get_run(1);
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  EXPECT_EQ(r->value["description"].get<std::string>().size(), 4000u);
  EXPECT_EQ(fake.count("get_run"), 2);
  const auto events = log_.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].kind, ApiEvent::Kind::kTransportError);
  EXPECT_EQ(events[0].message.rfind("read", 0), 0u) << events[0].message;
}

TEST_F(FakeServerTest, TimeoutOnADelayedAnswer) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  fake.delay_next(seconds(3));
  HttpClient http;
  auto options = options_for(fake);
  options.request_timeout = milliseconds(300);
  options.max_read_attempts = 1;
  TestRailClient client(options, http, clock_, log_.observer());
  // Waited out, the delayed answer would be a success.
  auto r = client.get_run(1);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error().kind, ApiErrorKind::kTransient);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;

  // With a second attempt the call succeeds (the delay applied only once).
  fake.delay_next(seconds(3));
  options.max_read_attempts = 2;
  TestRailClient retrying(options, http, clock_);
  auto ok = retrying.get_run(1);
  ASSERT_TRUE(ok.is_ok()) << ok.error().describe();
}

TEST_F(FakeServerTest, LostAnswerToAPostIsUnknownOutcomeAndNotRepeated) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);
  ASSERT_TRUE(client.get_run(1).is_ok());  // a keep-alive connection now exists
  fake.drop_next("close_run");
  auto r = client.post("close_run/1", json::object());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.error().kind, ApiErrorKind::kUnknownOutcome);
  EXPECT_EQ(fake.count("close_run"), 1);
  // The server did apply it: exactly why it must not be repeated blindly.
  EXPECT_TRUE(fake.run(1).value()["is_completed"].get<bool>());
}

TEST_F(FakeServerTest, LostAnswerToAGetOnAReusedConnectionIsResentOnce) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_, log_.observer());
  ASSERT_TRUE(client.get_run(1).is_ok());
  fake.drop_next();
  auto r = client.get_run(1);
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  EXPECT_EQ(fake.count("get_run"), 3);
  EXPECT_EQ(http.connections_opened(), 2u);
  EXPECT_EQ(log_.count(ApiEvent::Kind::kTransportError), 0);  // handled inside the transport
}

TEST_F(FakeServerTest, StaleKeepAliveConnectionIsReplaced) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_, log_.observer());
  ASSERT_TRUE(client.get_run(1).is_ok());
  fake.close_idle_connections();
  auto r = client.post("update_run/1", json{{"name", "renamed"}});
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  EXPECT_EQ(fake.count("update_run"), 1);
  EXPECT_EQ(fake.connections_accepted(), 2u);
  EXPECT_EQ(log_.count(ApiEvent::Kind::kTransportError), 0);
}

TEST_F(FakeServerTest, ConnectionCloseFromServerIsHonoured) {
  FakeTestRail fake;
  fake.set_keep_alive(false);
  fake.add_run({{"project_id", 1}});
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_, log_.observer());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client.get_run(1).is_ok());
  EXPECT_EQ(fake.connections_accepted(), 3u);
  EXPECT_EQ(log_.count(ApiEvent::Kind::kTransportError), 0);
}

TEST_F(FakeServerTest, WriteBackLifecycle) {
  FakeTestRail fake;
  fake.add_project(1);
  fake.set_now(1'700'000'100);
  HttpClient http;
  TestRailClient client(options_for(fake), http, clock_);
  auto added = client.post(
      "add_run/1",
      json{{"name", "Nightly"}, {"suite_id", 3}, {"include_all", false}, {"case_ids", {1, 2, 3}}});
  ASSERT_TRUE(added.is_ok()) << added.error().describe();
  const json run = json::parse(added->body);
  const auto id = run["id"].get<std::int64_t>();
  EXPECT_EQ(run["untested_count"], 3);
  EXPECT_EQ(added->server_date, 1'700'000'100);

  auto bad = client.post("add_run/1", json{{"suite_id", 3}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.error().kind, ApiErrorKind::kRejected);
  EXPECT_EQ(bad.error().message, "Field :name is a required field.");

  auto closed = client.post("close_run/" + std::to_string(id), json::object());
  ASSERT_TRUE(closed.is_ok());
  auto obs =
      observation_from_api_run(json::parse(closed->body), *closed->server_date, Source::kApi);
  ASSERT_TRUE(obs.is_ok());
  EXPECT_EQ(obs->state, StateClaim::kEnded);
  EXPECT_EQ(*obs->get(Field::kCompletedOn), Value{std::int64_t{1'700'000'100}});

  auto deleted = client.post("delete_run/" + std::to_string(id), json::object());
  ASSERT_TRUE(deleted.is_ok());
  EXPECT_TRUE(deleted->body.empty());
  auto gone = client.get_run(id);
  ASSERT_FALSE(gone.is_ok());
  EXPECT_EQ(gone.error().kind, ApiErrorKind::kNotFound);
}

TEST_F(FakeServerTest, StopCancelsTheRequestInFlight) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}});
  fake.delay_next(seconds(20));
  HttpClient http;
  auto options = options_for(fake);
  options.request_timeout = seconds(30);
  TestRailClient client(options, http, clock_);
  std::optional<ApiResult<Fetched<json>>> result;
  std::thread t([&] { result.emplace(client.get_run(1)); });
  ASSERT_TRUE(fake.wait_for_requests(1, seconds(5)));
  // Waited out, the delayed answer would be a success.
  client.stop();
  t.join();
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(result->is_ok());
  EXPECT_EQ(result->error().kind, ApiErrorKind::kStopped);
}

// --- HTTPS ---------------------------------------------------------------------

HttpRequest get_request(const std::string& url, const FakeTestRail& fake) {
  HttpRequest req;
  req.url = url + "/index.php?/api/v2/get_run/1";
  req.basic_auth.emplace(fake.options().user, fake.options().api_key);
  req.timeout = seconds(5);
  return req;
}

TEST(HttpClientTls, HttpsToAPlainHttpServerFailsCleanly) {
  FakeTestRail fake;
  HttpClient http;
  auto r = http.send(get_request("https://127.0.0.1:" + std::to_string(fake.port()), fake));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->stage, HttpStage::kTlsHandshake) << r.error->message;
  EXPECT_FALSE(r.error->may_have_been_sent);
  EXPECT_FALSE(r.error->timed_out);
}

TEST(HttpClientTls, SelfSignedCertificateFailsVerification) {
  FakeTestRail::Options fo;
  fo.tls = true;
  FakeTestRail fake(fo);
  HttpClient http;
  auto r = http.send(get_request(fake.base_url(), fake));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->stage, HttpStage::kTlsHandshake);
  EXPECT_NE(r.error->message.find("certificate verify failed"), std::string::npos)
      << r.error->message;
  EXPECT_FALSE(r.error->may_have_been_sent);
  EXPECT_EQ(fake.request_count(), 0u);
}

TEST(HttpClientTls, TrustedCertificateWorksAndHostNameIsChecked) {
  FakeTestRail::Options fo;
  fo.tls = true;
  fo.cert_hosts = {"127.0.0.1", "localhost"};
  FakeTestRail fake(fo);
  fake.add_run({{"project_id", 1}});
  HttpClientOptions ho;
  ho.extra_ca_pem = fake.certificate_pem();
  HttpClient http(ho);
  auto r = http.send(get_request(fake.base_url(), fake));
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_FALSE(r.response.date.empty());
  auto again = http.send(get_request(fake.base_url(), fake));
  ASSERT_TRUE(again.ok()) << again.error->message;
  EXPECT_EQ(http.connections_opened(), 1u);  // TLS keep-alive reused

  // The same certificate presented for another name is refused.
  FakeTestRail::Options other;
  other.tls = true;
  other.cert_hosts = {"testrail.example"};
  FakeTestRail wrong_name(other);
  HttpClientOptions ho2;
  ho2.extra_ca_pem = wrong_name.certificate_pem();
  HttpClient http2(ho2);
  auto refused = http2.send(get_request(wrong_name.base_url(), wrong_name));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error->stage, HttpStage::kTlsHandshake) << refused.error->message;
  EXPECT_EQ(wrong_name.request_count(), 0u);
}

TEST(HttpClient, ConnectionRefusedIsAConnectError) {
  std::uint16_t port = 0;
  {
    FakeTestRail fake;  // take a port, then free it
    port = fake.port();
  }
  HttpClient http;
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto r = http.send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->stage, HttpStage::kConnect);
  EXPECT_FALSE(r.error->may_have_been_sent);
}

TEST(HttpClient, BodyLimitIsEnforced) {
  FakeTestRail fake;
  fake.add_run({{"project_id", 1}, {"description", std::string(5000, 'x')}});
  HttpClientOptions ho;
  ho.body_limit = 1000;
  HttpClient http(ho);
  auto r = http.send(get_request(fake.base_url(), fake));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->stage, HttpStage::kRead);
}

TEST(HttpClient, BadUrl) {
  HttpClient http;
  HttpRequest req;
  req.url = "ftp://example.com/";
  auto r = http.send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->stage, HttpStage::kUrl);
}

}  // namespace
}  // namespace runsync
