// POST {testrail_webhook.path}: TestRail's own webhooks as refresh hints
// (SPEC §4a). Authenticates a delivery by the shared secret in the
// configured header, reads the ids (core's parse_hint), stores one pending
// refresh through the single writer and answers 202 once it is durable.
// Nothing in the body is stored as run data.
//
// Thread safety: check_head() and handle() run on the HTTP thread;
// set_secret() may be called from any thread (SIGHUP reload).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "core/testrail_hint.h"
#include "daemon/http/http_server.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "storage/writer.h"

namespace runsync {

struct HintEndpointOptions {
  std::string secret;  // empty: no secret is asked for
  std::string secret_header = "X-Runsync-Secret";
  HintPointers pointers;
  // The configured TestRail project ids: a hint naming another project is
  // answered "ignored" and stores nothing.
  std::set<std::int64_t> projects;
};

// How a delivery ended; runsync_testrail_hints_total counts each by name.
enum class HintResult { kQueued, kIgnored, kInvalid, kUnauthorized, kBusy, kError };
inline constexpr std::size_t kHintResultCount = 6;
// "queued", "ignored", "invalid", "unauthorized", "busy", "error".
const char* hint_result_name(HintResult result);

class HintEndpoint {
 public:
  // `writer`, `metrics`, `logger` and `clock` must outlive the endpoint;
  // `clock` stamps hints and paces warnings. `on_queued` is called after
  // each stored hint, on the writer's (or its sync) thread, to wake the
  // refresher; it must not block.
  HintEndpoint(HintEndpointOptions options, Writer& writer, Metrics& metrics, Logger logger,
               const Clock& clock, std::function<void()> on_queued);

  // 401 from the head alone when the secret header is missing or wrong
  // (counted and logged); nullopt when the body is needed.
  std::optional<ServerResponse> check_head(const ServerRequest& head);
  void handle(ServerRequest&& request, Respond respond);
  void set_secret(std::string secret);

 private:
  std::optional<ServerResponse> refuse_unauthenticated(const ServerRequest& request);
  ServerResponse reject(const ServerRequest& request, int status, const std::string& reason,
                        HintResult result);
  // The runsync_testrail_hints_total series of `result`.
  Counter& hints(HintResult result);

  const HintEndpointOptions options_;
  const std::string header_lower_;  // options_.secret_header in lower case
  mutable std::mutex secret_mu_;
  std::shared_ptr<const std::string> secret_;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  const Clock& clock_;
  std::function<void()> on_queued_;
  LogRateLimiter warnings_;
  std::array<Counter*, kHintResultCount> results_{};  // looked up once, by HintResult
};

}  // namespace runsync
