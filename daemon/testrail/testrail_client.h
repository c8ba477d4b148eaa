// The TestRail API v2 client (SPEC §5, reference/upstream-facts.md): builds
// `{base}/index.php?/api/v2/{uri}` requests with Basic auth, keeps under the
// configured request rate, retries what is worth retrying, and turns answers
// into the core's parsed pages, runs and plans.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "core/clock.h"
#include "core/testrail_api.h"
#include "daemon/http/http_client.h"

namespace runsync {

// Who is asking for a request slot. A refresh a TestRail webhook hint asked
// for goes before routine polling and write-back when both wait (SPEC §4a),
// but for at most 3 slots in a row, so a flood of hints slows polling
// instead of stopping it.
enum class RequestPriority { kRoutine, kHint };

// A sliding-window limiter: at most `max_per_minute` acquisitions in any 60 s
// window of `clock`. Thread-safe; share one between all clients that talk
// to the same instance (the budget is per instance). `clock` must outlive it.
class RateLimiter {
 public:
  // `max_per_minute` 0 means no limit.
  RateLimiter(std::uint32_t max_per_minute, const Clock& clock);

  // Blocks until one more request fits, then counts it and returns the
  // clock time it was counted at. While a kHint caller waits, a kRoutine
  // caller takes no slot, unless hints took the last 3 while it waited.
  // Calls `before_wait(duration)` (when set) each time
  // it is about to wait. Returns nullopt, counting nothing, when `stop` is
  // or becomes true.
  std::optional<Clock::TimePoint> acquire(
      const std::atomic<bool>& stop,
      const std::function<void(std::chrono::milliseconds)>& before_wait = {},
      RequestPriority priority = RequestPriority::kRoutine);

 private:
  const std::uint32_t max_per_minute_;
  const Clock& clock_;
  std::mutex mu_;
  std::deque<Clock::TimePoint> recent_;        // start times within the last minute
  int hints_waiting_ = 0;                      // kHint callers inside acquire()
  int routine_waiting_ = 0;                    // kRoutine callers inside acquire()
  int hint_streak_ = 0;  // slots hints took in a row while a routine caller waited
};

enum class ApiErrorKind {
  // 401 or 403: credentials or permissions are wrong; or (http_status 0)
  // the server's TLS certificate is not trusted. Retrying soon will not
  // help (SPEC §5: log as a configuration error, retry slowly).
  kConfig,
  // get_run/get_plan answered 400 "... is not a valid ...": the entity does
  // not exist (SPEC §6 rule 4).
  kNotFound,
  // Any other 4xx (400, 404, ...): the request itself is wrong.
  kRejected,
  // 429, 409, 5xx or transport errors (timeouts included) until the
  // attempts ran out.
  kTransient,
  // A POST may have been applied: the request may have reached the server
  // and no definite answer came back (timeout or lost connection after
  // sending, or 500/502/504). Never repeat it blindly (SPEC §7).
  kUnknownOutcome,
  // A 2xx answer whose body is not what the endpoint returns.
  kBadResponse,
  // stop() was called.
  kStopped,
};

struct ApiError {
  ApiErrorKind kind = ApiErrorKind::kTransient;
  int http_status = 0;  // of the last answer; 0 when the last attempt got none
  std::string message;  // the API's {"error"} text, or the transport/parse error
  int attempts = 0;     // requests sent for this call
  // One line for logs, e.g. "HTTP 401: Authentication failed ...".
  std::string describe() const;
};

// A value or an ApiError.
template <typename T>
using ApiResult = Result<T, ApiError>;

// A 2xx answer.
struct ApiResponse {
  int http_status = 0;
  std::string body;  // as received (legacy prefix included)
  // The server's Date header in unix seconds; nullopt when absent or not an
  // IMF-fixdate.
  std::optional<std::int64_t> server_date;
  // When what this answer says was observed (unix s): observation_time() of
  // the server's Date and the answer's arrival (SPEC §6 rule 2).
  std::int64_t observed_at = 0;
  int attempts = 1;  // requests sent for this call, retries included
};

// A parsed answer, observed at `observed_at` (see ApiResponse::observed_at).
template <typename T>
struct Fetched {
  T value;
  std::int64_t observed_at = 0;
  int attempts = 1;  // requests sent for this call, retries included
};

// One attempt, wait or failure, for logs and metrics.
struct ApiEvent {
  enum class Kind {
    kAnswer,          // an attempt got an HTTP answer: http_status, latency
    kTransportError,  // an attempt got no answer: message, latency
    // About to wait: wait, reason ("rate_limit", "retry-after", "backoff");
    // for a retry also the failed attempt's http_status or message.
    kWait,
    kFailure,         // the call failed for good: error
  };
  Kind kind = Kind::kAnswer;
  const char* method = "GET";
  std::string uri;  // the API path, e.g. "get_runs/1&is_completed=0&limit=250&offset=0"
  int attempt = 0;  // 1-based
  int http_status = 0;
  std::chrono::milliseconds latency{0};
  std::chrono::milliseconds wait{0};
  std::string reason;             // kWait
  std::string message;            // kTransportError
  std::optional<ApiError> error;  // kFailure
};
// Called on the thread making the call; must be thread-safe when the client
// is shared between threads. Must not call back into the client.
using ApiObserver = std::function<void(const ApiEvent&)>;

struct TestRailClientOptions {
  std::string base_url;  // e.g. "https://example.testrail.io" (a trailing '/' is fine)
  std::string user;      // Basic auth user (e-mail)
  std::string api_key;   // Basic auth password or API key
  std::chrono::milliseconds request_timeout{30'000};  // per attempt, all stages together
  std::uint32_t max_requests_per_minute = 120;        // 0: no limit
  int max_read_attempts = 5;                          // GET: attempts per call, retries included
  int max_write_attempts = 5;                         // POST
  std::chrono::seconds default_retry_after{60};       // 429 without a usable Retry-After
  std::chrono::seconds max_retry_after{300};          // longer Retry-After values are capped
  std::chrono::seconds max_backoff{30};               // backoff: min(2^i s, this), jittered
  std::uint64_t jitter_seed = 0;                      // 0: seeded from std::random_device
  RequestPriority priority = RequestPriority::kRoutine;  // for every request of this client
  // A PEM file of further trusted certificate authorities (testrail.ca_file);
  // used by create()'s HttpClient.
  std::string ca_file;
};

// A TestRail API client.
//
// Requests go to `{base}/index.php?/api/v2/{uri}`; `uri` may also be given
// as "index.php?/api/v2/..." or "/api/v2/..." (see api_path), so the result
// of next_link_to_uri can be passed as is. Every request carries Basic auth
// and `Content-Type: application/json`.
//
// Behaviour on answers, per attempt:
// - 2xx: success.
// - 429: waits Retry-After seconds (default_retry_after when missing,
//   capped at max_retry_after), then retries. The server refused the
//   request, so POSTs are retried too.
// - 409 (maintenance), 503 and other 5xx, timeouts and transport errors:
//   exponential backoff with jitter, uniformly in [b/2, b] with
//   b = min(2^i s, max_backoff), i = 0, 1, …; at most max_*_attempts in all.
//   For POST, 409 and 503 are retried (the server refused before doing
//   anything), but 500, 502 and 504 fail with kUnknownOutcome: the server or
//   the instance behind a proxy may have applied it. A POST whose transport
//   failed after any byte was written also fails with kUnknownOutcome; one
//   whose transport failed before anything was sent is retried.
// - 401/403: fail at once with kConfig; other 4xx at once with kRejected.
// - A TLS certificate that fails verification: fail at once with kConfig
//   (http_status 0), the message saying why (unknown issuer, expired, host
//   name mismatch).
// Every request, retries included, first takes a slot from the rate
// limiter. When attempts run out the call fails with kTransient carrying
// the last status and message.
//
// Thread-safe: calls from several threads share the limiter and take turns
// on the transport (one request at a time). stop() may be called from any
// thread: waits end within 100 ms, the request in flight is cancelled
// through HttpTransport::cancel(), and every call then fails with kStopped
// (or kUnknownOutcome for a POST that may have been sent).
class TestRailClient {
 public:
  // `clock` times requests and waits (backoff, Retry-After, the limiter's
  // when the client owns it) and stamps answers (ApiResponse::observed_at).
  // `transport` and `clock` (and `shared_limiter`, when given) must outlive
  // the client. Without `shared_limiter` the client owns a limiter of
  // options.max_requests_per_minute.
  TestRailClient(TestRailClientOptions options, HttpTransport& transport, const Clock& clock,
                 ApiObserver observer = {}, RateLimiter* shared_limiter = nullptr);
  // A client with its own HttpClient (request_timeout as its deadline);
  // with `shared_limiter` (which must outlive it) its requests count
  // against that limiter's budget.
  static std::unique_ptr<TestRailClient> create(TestRailClientOptions options, const Clock& clock,
                                                ApiObserver observer = {},
                                                RateLimiter* shared_limiter = nullptr);
  ~TestRailClient();
  TestRailClient(const TestRailClient&) = delete;
  TestRailClient& operator=(const TestRailClient&) = delete;

  // GET {uri}; the 2xx answer or the error.
  ApiResult<ApiResponse> get(std::string_view uri);
  // Called before an attempt's request is written: after its request slot
  // is taken and while no other request of this client is in flight.
  // Returning false withdraws the call, which fails with kStopped having
  // sent nothing in that attempt.
  using BeforeSend = std::function<bool()>;
  // POST {uri} with `body` serialised; the 2xx answer (delete_run's is
  // empty) or the error. `before_send`, when set, runs before each attempt.
  ApiResult<ApiResponse> post(std::string_view uri, const nlohmann::json& body,
                              const BeforeSend& before_send = {});

  // get_run/{run_id}: the run object. kNotFound when the run does not exist;
  // kBadResponse when the answer is not a JSON object.
  ApiResult<Fetched<nlohmann::json>> get_run(std::int64_t run_id);
  // get_plan/{plan_id} with its runs flattened. kNotFound when the plan does
  // not exist.
  ApiResult<Fetched<PlanRuns>> get_plan(std::int64_t plan_id);

  // Every request sent after this call carries `api_key` (a reloaded
  // secret); a request already being sent keeps the key it had.
  void set_api_key(std::string api_key);

  void stop();
  bool stopped() const { return stop_; }

 private:
  TestRailClient(TestRailClientOptions options, std::unique_ptr<HttpTransport> transport,
                 const Clock& clock, ApiObserver observer, RateLimiter* shared_limiter);
  // `entity_lookup`: get_run/get_plan, where a 400 saying the id "is not a
  // valid" entity means kNotFound.
  ApiResult<ApiResponse> call(const char* method, std::string_view uri, std::string body,
                              bool entity_lookup = false, const BeforeSend& before_send = {});
  // The request for API path `path`, without credentials.
  HttpRequest make_request(const char* method, const std::string& path, std::string body) const;
  // One attempt: takes a request slot, sends `request` with the current key
  // and reports the answer or transport error through `event` (filled in
  // and emitted). nullopt, having sent nothing, when stopped or withdrawn
  // by `before_send`.
  std::optional<HttpResult> send(HttpRequest& request, ApiEvent& event,
                                 const BeforeSend& before_send);
  // Emits the kWait event of `attempt` about to wait `wait` for `reason`.
  void emit_wait(const ApiEvent& attempt, std::chrono::milliseconds wait, const char* reason) const;
  std::chrono::milliseconds backoff(int retry_index);
  std::chrono::milliseconds retry_after(const HttpResponse& response) const;
  void emit(const ApiEvent& event) const;
  // The kFailure event of a call that failed for good with `error`.
  void emit_failure(const char* method, const std::string& uri, const ApiError& error) const;
  // A kBadResponse error, reported to the observer.
  ApiError bad_response(const std::string& uri, const ApiResponse& response,
                        std::string message) const;

  const TestRailClientOptions options_;
  std::unique_ptr<HttpTransport> owned_transport_;
  std::unique_ptr<RateLimiter> owned_limiter_;
  HttpTransport& transport_;
  const Clock& clock_;
  RateLimiter& limiter_;
  const ApiObserver observer_;
  std::atomic<bool> stop_{false};
  mutable std::mutex api_key_mu_;
  std::string api_key_;  // guarded by api_key_mu_
  std::mutex transport_mu_;  // one request at a time on the transport
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

}  // namespace runsync
