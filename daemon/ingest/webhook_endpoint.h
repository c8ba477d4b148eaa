// POST {webhook.path}: authenticates a delivery, parses it, and hands it to
// the single writer; answers only after the writer's commit (SPEC §4).
// Holds no reconciliation logic: parsing is core's, applying is storage's.
//
// Thread safety: handle() runs on the HTTP thread; set_auth() may be called
// from any thread (SIGHUP reload).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "daemon/http/http_server.h"
#include "daemon/ingest/signature.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "storage/writer.h"

namespace runsync {

struct WebhookAuth {
  std::string secret;                     // X-Qase-Secret; empty = not required
  std::optional<SigningKey> signing_key;  // Standard Webhooks; nullopt = not required
};

class WebhookEndpoint {
 public:
  // `projects` maps project_code → TestRail project id. `writer`, `metrics`,
  // `logger` and `clock` must outlive the endpoint. `clock` stamps
  // deliveries, checks signature ages, times answers and paces the
  // warnings about refused deliveries (one per kind per 10 s, with a count).
  WebhookEndpoint(WebhookAuth auth, std::map<std::string, std::int64_t> projects, Writer& writer,
                  Metrics& metrics, Logger logger, const Clock& clock);

  // Refuses a delivery from its head alone, before its body is read: 401
  // for a wrong or missing X-Qase-Secret, or Standard Webhooks headers that
  // are missing or too old. Returns that answer (counted and logged), or
  // nullopt when the body is needed to decide. `head.body` is ignored.
  std::optional<ServerResponse> check_head(const ServerRequest& head);
  void handle(ServerRequest&& request, Respond respond);
  void set_auth(WebhookAuth auth);

 private:
  std::shared_ptr<const WebhookAuth> current_auth();
  // Why `request` is not authenticated, or nullopt. Without `body` only
  // what the headers tell is checked.
  static std::optional<std::string> auth_failure(const WebhookAuth& auth,
                                                 const ServerRequest& request,
                                                 const std::string* body, std::int64_t now);
  // runsync_webhook_events_total's results by index: each WebhookResult
  // (by its value), then the endpoint's own two.
  static constexpr std::size_t kResultError = 4;  // "error": a delivery not stored
  static constexpr std::size_t kResultBusy = 5;   // "busy": the write queue was full
  static constexpr std::size_t kResultCount = 6;
  static const char* result_label(std::size_t result);  // the metric's label value
  Counter& events(const std::string& event_name, std::size_t result);
  Counter& events(const std::string& event_name, WebhookResult result) {
    return events(event_name, static_cast<std::size_t>(result));
  }
  ServerResponse reject(const ServerRequest& request, int status, const std::string& reason,
                        const char* result_label);

  std::mutex auth_mu_;
  std::shared_ptr<const WebhookAuth> auth_;
  std::map<std::string, std::int64_t> projects_;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  const Clock& clock_;
  Histogram& ack_latency_;
  LogRateLimiter warnings_;
  // runsync_webhook_events_total series, looked up once: [event][result].
  std::array<std::array<Counter*, kResultCount>, kEventKindCount> events_{};
};

}  // namespace runsync
