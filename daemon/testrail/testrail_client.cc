#include "daemon/testrail/testrail_client.h"

#include <algorithm>
#include <cctype>

namespace runsync {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kSleepSlice{50};  // how long a caller yields its turn to another
constexpr auto kWindow = std::chrono::minutes(1);

milliseconds to_ms(Clock::Duration d) {
  return std::chrono::ceil<milliseconds>(d);
}

// What the retry loop does after one attempt.
struct Verdict {
  enum class Next { kSucceed, kFail, kStop, kRetry };
  Next next = Next::kRetry;
  // kFail: the call's error; kRetry: the call's error should no attempt be left.
  ApiError error{};
  bool after_retry_after = false;  // kRetry: wait Retry-After rather than back off
};

Verdict retry(ApiError error, bool after_retry_after = false) {
  return {Verdict::Next::kRetry, std::move(error), after_retry_after};
}

Verdict give_up(ApiError error) { return {Verdict::Next::kFail, std::move(error)}; }

// What the operator should do about a TLS certificate that failed
// verification for reason `why` (the verifier's text).
const char* tls_advice(std::string_view why) {
  if (why.starts_with("unknown issuer")) {
    return "if TestRail's certificate comes from a private CA, name that CA's "
           "certificate in testrail.ca_file";
  }
  if (why.starts_with("expired") || why.starts_with("not yet valid")) {
    return "TestRail's certificate must be renewed (or this machine's clock is wrong)";
  }
  if (why.starts_with("host name mismatch")) {
    return "testrail.url must name a host the certificate is for";
  }
  if (why.starts_with("cannot load")) return "fix testrail.ca_file";
  return "check TestRail's certificate and testrail.ca_file";
}

// An attempt that got no answer (see TestRailClient's retry rules).
Verdict judge_transport_error(const HttpError& err, bool write, bool stopping, int attempt) {
  if (write && err.may_have_been_sent) {
    return give_up({ApiErrorKind::kUnknownOutcome, 0,
                    err.message + " (the request may have been applied)", attempt});
  }
  if (err.cancelled || stopping) return {Verdict::Next::kStop};
  if (!err.tls_verify_error.empty()) {
    return give_up(
        {ApiErrorKind::kConfig, 0, err.message + "; " + tls_advice(err.tls_verify_error), attempt});
  }
  return retry({ApiErrorKind::kTransient, 0, err.message, attempt});
}

// An attempt that got an HTTP answer (see TestRailClient's retry rules).
Verdict judge_answer(const HttpResponse& response, bool write, bool entity_lookup, int attempt) {
  const int status = response.status;
  if (status >= 200 && status < 300) return {Verdict::Next::kSucceed};
  std::string message = api_error_message(response.body);
  if (status == 401 || status == 403) {
    return give_up({ApiErrorKind::kConfig, status, std::move(message), attempt});
  }
  if (status == 429) {
    return retry({ApiErrorKind::kTransient, status, std::move(message), attempt},
                 /*after_retry_after=*/true);
  }
  if (status == 409 || status >= 500) {
    if (write && status != 409 && status != 503) {
      return give_up({ApiErrorKind::kUnknownOutcome, status,
                      message + " (the request may have been applied)", attempt});
    }
    return retry({ApiErrorKind::kTransient, status, std::move(message), attempt});
  }
  const bool missing = entity_lookup && answer_says_missing(status, message);
  return give_up({missing ? ApiErrorKind::kNotFound : ApiErrorKind::kRejected, status,
                  std::move(message), attempt});
}

// The call's answer from a 2xx `response` that arrived at `now` (unix s).
ApiResponse accepted(HttpResponse response, int attempts, std::int64_t now) {
  ApiResponse ok;
  ok.http_status = response.status;
  ok.server_date = parse_http_date(response.date);
  ok.observed_at = observation_time(ok.server_date, now);
  ok.body = std::move(response.body);
  ok.attempts = attempts;
  return ok;
}

}  // namespace

RateLimiter::RateLimiter(std::uint32_t max_per_minute, const Clock& clock)
    : max_per_minute_(max_per_minute), clock_(clock) {}

std::optional<Clock::TimePoint> RateLimiter::acquire(
    const std::atomic<bool>& stop, const std::function<void(milliseconds)>& before_wait,
    RequestPriority priority) {
  constexpr int kMaxHintStreak = 3;
  if (stop) return std::nullopt;
  if (max_per_minute_ == 0) return clock_.now();
  const bool hint = priority == RequestPriority::kHint;
  std::unique_lock lock(mu_);
  int& waiting = hint ? hints_waiting_ : routine_waiting_;
  ++waiting;
  struct Leave {
    int& waiting;
    ~Leave() { --waiting; }  // runs with mu_ held
  } leave{waiting};
  for (;;) {
    if (stop) return std::nullopt;
    const auto now = clock_.now();
    while (!recent_.empty() && recent_.front() + kWindow <= now) recent_.pop_front();
    const bool room = recent_.size() < max_per_minute_;
    const bool routine_due = routine_waiting_ > 0 && hint_streak_ >= kMaxHintStreak;
    const bool mine = hint ? !routine_due : hints_waiting_ == 0 || routine_due;
    if (room && mine) {
      recent_.push_back(now);
      if (!hint) {
        hint_streak_ = 0;
      } else if (routine_waiting_ > 0) {
        ++hint_streak_;
      }
      return now;
    }
    // With room, the slot is another caller's turn: let it take it.
    const auto wake = room ? now + kSleepSlice : recent_.front() + kWindow;
    lock.unlock();
    if (before_wait && !room) before_wait(to_ms(wake - now));
    const bool woke = clock_.sleep_until(wake, stop);
    lock.lock();
    if (!woke) return std::nullopt;
  }
}

std::string ApiError::describe() const {
  std::string out;
  if (http_status != 0) out = "HTTP " + std::to_string(http_status) + ": ";
  out += message;
  if (attempts > 1) out += " after " + std::to_string(attempts) + " attempts";
  return out;
}

TestRailClient::TestRailClient(TestRailClientOptions options, HttpTransport& transport,
                               const Clock& clock, ApiObserver observer,
                               RateLimiter* shared_limiter)
    : options_(std::move(options)),
      owned_limiter_(shared_limiter != nullptr
                         ? nullptr
                         : std::make_unique<RateLimiter>(options_.max_requests_per_minute, clock)),
      transport_(transport),
      clock_(clock),
      limiter_(shared_limiter != nullptr ? *shared_limiter : *owned_limiter_),
      observer_(std::move(observer)),
      rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
  api_key_ = options_.api_key;
}

TestRailClient::TestRailClient(TestRailClientOptions options,
                               std::unique_ptr<HttpTransport> transport, const Clock& clock,
                               ApiObserver observer, RateLimiter* shared_limiter)
    : options_(std::move(options)),
      owned_transport_(std::move(transport)),
      owned_limiter_(shared_limiter != nullptr
                         ? nullptr
                         : std::make_unique<RateLimiter>(options_.max_requests_per_minute, clock)),
      transport_(*owned_transport_),
      clock_(clock),
      limiter_(shared_limiter != nullptr ? *shared_limiter : *owned_limiter_),
      observer_(std::move(observer)),
      rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
  api_key_ = options_.api_key;
}

std::unique_ptr<TestRailClient> TestRailClient::create(TestRailClientOptions options,
                                                       const Clock& clock, ApiObserver observer,
                                                       RateLimiter* shared_limiter) {
  HttpClientOptions http;
  http.timeout = options.request_timeout;
  http.ca_file = options.ca_file;
  return std::unique_ptr<TestRailClient>(
      new TestRailClient(std::move(options), std::make_unique<HttpClient>(std::move(http)), clock,
                         std::move(observer), shared_limiter));
}

TestRailClient::~TestRailClient() = default;

void TestRailClient::stop() {
  stop_ = true;
  transport_.cancel();
}

void TestRailClient::emit(const ApiEvent& event) const {
  if (observer_) observer_(event);
}

void TestRailClient::emit_failure(const char* method, const std::string& uri,
                                  const ApiError& error) const {
  ApiEvent event;
  event.kind = ApiEvent::Kind::kFailure;
  event.method = method;
  event.uri = uri;
  event.attempt = error.attempts;
  event.http_status = error.http_status;
  event.error = error;
  emit(event);
}

milliseconds TestRailClient::backoff(int retry_index) {
  const auto cap = std::chrono::duration_cast<milliseconds>(options_.max_backoff);
  milliseconds base = cap;
  if (retry_index < 20) base = std::min(cap, milliseconds(1000LL << retry_index));
  std::lock_guard lock(rng_mu_);
  std::uniform_int_distribution<long long> dist(base.count() / 2, base.count());
  return milliseconds(dist(rng_));
}

milliseconds TestRailClient::retry_after(const HttpResponse& response) const {
  const auto cap = std::chrono::duration_cast<milliseconds>(options_.max_retry_after);
  const auto fallback = std::min(cap, milliseconds(options_.default_retry_after));
  const std::string& text = response.retry_after;
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return fallback;
  const auto last = text.find_last_not_of(" \t");
  const std::string value = text.substr(first, last - first + 1);
  if (value.size() <= 9 &&
      std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::min(cap, milliseconds(std::stoll(value) * 1000));
  }
  // An HTTP-date: the wait is measured against the server's own clock.
  const auto until = parse_http_date(value);
  const auto server_now = parse_http_date(response.date);
  if (!until || !server_now) return fallback;
  return std::clamp(milliseconds((*until - *server_now) * 1000), milliseconds(0), cap);
}

ApiError TestRailClient::bad_response(const std::string& uri, const ApiResponse& response,
                                      std::string message) const {
  ApiError error{ApiErrorKind::kBadResponse, response.http_status, std::move(message),
                 response.attempts};
  emit_failure("GET", uri, error);
  return error;
}

ApiResult<ApiResponse> TestRailClient::call(const char* method, std::string_view uri,
                                            std::string body, bool entity_lookup,
                                            const BeforeSend& before_send) {
  const bool write = std::string_view(method) == "POST";
  const std::string path = api_path(uri);
  HttpRequest request = make_request(method, path, std::move(body));
  const int max_attempts =
      std::max(1, write ? options_.max_write_attempts : options_.max_read_attempts);
  ApiError last;  // the latest retried attempt's error
  int retries = 0;
  auto fail = [&](ApiError error) -> ApiResult<ApiResponse> {
    emit_failure(method, path, error);
    return error;
  };
  auto stopped = [&](int attempts) {
    return fail({ApiErrorKind::kStopped, last.http_status, "stopped", attempts});
  };

  for (int attempt = 1;; ++attempt) {
    ApiEvent event;
    event.method = method;
    event.uri = path;
    event.attempt = attempt;
    auto result = send(request, event, before_send);
    if (!result) return stopped(attempt - 1);

    Verdict verdict = result->ok() ? judge_answer(result->response, write, entity_lookup, attempt)
                                   : judge_transport_error(*result->error, write, stop_, attempt);
    switch (verdict.next) {
      case Verdict::Next::kSucceed:
        return accepted(std::move(result->response), attempt, clock_.unix_seconds());
      case Verdict::Next::kFail:
        return fail(std::move(verdict.error));
      case Verdict::Next::kStop:
        return stopped(attempt);
      case Verdict::Next::kRetry:
        break;
    }
    last = std::move(verdict.error);
    const milliseconds wait =
        verdict.after_retry_after ? retry_after(result->response) : backoff(retries++);
    if (attempt >= max_attempts) return fail(last);
    emit_wait(event, wait, verdict.after_retry_after ? "retry-after" : "backoff");
    if (!clock_.sleep_until(clock_.now() + wait, stop_)) return stopped(attempt);
  }
}

HttpRequest TestRailClient::make_request(const char* method, const std::string& path,
                                         std::string body) const {
  std::string base = options_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  HttpRequest request;
  request.method = method;
  request.url = base + "/index.php?/api/v2/" + path;
  request.body = std::move(body);
  request.timeout = options_.request_timeout;
  return request;
}

std::optional<HttpResult> TestRailClient::send(HttpRequest& request, ApiEvent& event,
                                               const BeforeSend& before_send) {
  auto on_rate_limit = [&](milliseconds wait) { emit_wait(event, wait, "rate_limit"); };
  if (!limiter_.acquire(stop_, on_rate_limit, options_.priority) || stop_) return std::nullopt;
  {
    std::lock_guard key_lock(api_key_mu_);
    request.basic_auth.emplace(options_.user, api_key_);
  }
  const auto start = clock_.now();
  HttpResult result;
  {
    std::lock_guard lock(transport_mu_);
    if (stop_ || (before_send && !before_send())) return std::nullopt;
    result = transport_.send(request);
  }
  event.latency = to_ms(clock_.now() - start);
  if (result.ok()) {
    event.kind = ApiEvent::Kind::kAnswer;
    event.http_status = result.response.status;
  } else {
    event.kind = ApiEvent::Kind::kTransportError;
    event.message = result.error->message;
  }
  emit(event);
  return result;
}

void TestRailClient::emit_wait(const ApiEvent& attempt, milliseconds wait,
                               const char* reason) const {
  ApiEvent w = attempt;
  w.kind = ApiEvent::Kind::kWait;
  w.wait = wait;
  w.reason = reason;
  emit(w);
}

void TestRailClient::set_api_key(std::string api_key) {
  std::lock_guard lock(api_key_mu_);
  api_key_ = std::move(api_key);
}

ApiResult<ApiResponse> TestRailClient::get(std::string_view uri) { return call("GET", uri, {}); }

ApiResult<ApiResponse> TestRailClient::post(std::string_view uri, const nlohmann::json& body,
                                            const BeforeSend& before_send) {
  return call("POST", uri, body.dump(), /*entity_lookup=*/false, before_send);
}

ApiResult<Fetched<nlohmann::json>> TestRailClient::get_run(std::int64_t run_id) {
  auto response = call("GET", "get_run/" + std::to_string(run_id), {}, /*entity_lookup=*/true);
  if (!response) return response.error();
  auto doc = parse_api_body(response->body);
  if (!doc) return bad_response("get_run/" + std::to_string(run_id), *response, doc.message());
  if (!doc->is_object()) {
    return bad_response("get_run/" + std::to_string(run_id), *response,
                        "get_run answer is not a JSON object");
  }
  return Fetched<nlohmann::json>{std::move(doc).value(), response->observed_at, response->attempts};
}

ApiResult<Fetched<PlanRuns>> TestRailClient::get_plan(std::int64_t plan_id) {
  auto response = call("GET", "get_plan/" + std::to_string(plan_id), {}, /*entity_lookup=*/true);
  if (!response) return response.error();
  auto plan = parse_plan(response->body);
  if (!plan) {
    return bad_response("get_plan/" + std::to_string(plan_id), *response, plan.message());
  }
  return Fetched<PlanRuns>{std::move(plan).value(), response->observed_at, response->attempts};
}

}  // namespace runsync
