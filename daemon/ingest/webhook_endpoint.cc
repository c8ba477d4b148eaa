#include "daemon/ingest/webhook_endpoint.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/webhook_event.h"
#include "daemon/ingest/queue_full.h"

namespace runsync {
namespace {

// Event names come from the sender: label values are the known names and
// "other".
std::size_t event_index(const std::string& name) {
  return static_cast<std::size_t>(event_kind(name));
}

Counter& events_counter(Metrics& m, const std::string& event, const std::string& result) {
  return m.counter("runsync_webhook_events_total", "Webhook deliveries by event name and result",
                   {{"event", event}, {"result", result}});
}

}  // namespace

WebhookEndpoint::WebhookEndpoint(WebhookAuth auth, std::map<std::string, std::int64_t> projects,
                                 Writer& writer, Metrics& metrics, Logger logger,
                                 const Clock& clock)
    : auth_(std::make_shared<const WebhookAuth>(std::move(auth))),
      projects_(std::move(projects)),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(clock),
      ack_latency_(metrics.histogram("runsync_webhook_ack_seconds",
                                     "Time from a webhook request to its durable answer")),
      warnings_(clock) {
  for (std::size_t e = 0; e < kEventKindCount; ++e) {
    for (std::size_t r = 0; r < kResultCount; ++r) {
      events_[e][r] =
          &events_counter(metrics_, event_kind_name(static_cast<EventKind>(e)), result_label(r));
    }
  }
}

const char* WebhookEndpoint::result_label(std::size_t result) {
  static_assert(static_cast<std::size_t>(WebhookResult::kIgnored) + 1 == kResultError);
  if (result == kResultError) return "error";
  if (result == kResultBusy) return "busy";
  return webhook_result_name(static_cast<WebhookResult>(result));
}

Counter& WebhookEndpoint::events(const std::string& event_name, std::size_t result) {
  return *events_[event_index(event_name)][result];
}

void WebhookEndpoint::set_auth(WebhookAuth auth) {
  auto next = std::make_shared<const WebhookAuth>(std::move(auth));
  std::lock_guard lock(auth_mu_);
  auth_ = std::move(next);
}

std::shared_ptr<const WebhookAuth> WebhookEndpoint::current_auth() {
  std::lock_guard lock(auth_mu_);
  return auth_;
}

ServerResponse WebhookEndpoint::reject(const ServerRequest& request, int status,
                                       const std::string& reason, const char* result_label) {
  events_counter(metrics_, "unparsed", result_label).inc();
  if (status != 401) {
    logger_->debug("webhook from {} refused ({}): {}", request.remote, status, reason);
  } else if (auto note = warnings_.admit("401")) {
    logger_->warn(
        "webhook from {} refused (401): {}; the sender should be configured with the "
        "right secret{}",
        request.remote, reason, *note);
  }
  return ServerResponse::error(status, reason);
}

std::optional<std::string> WebhookEndpoint::auth_failure(const WebhookAuth& auth,
                                                         const ServerRequest& request,
                                                         const std::string* body,
                                                         std::int64_t now) {
  const std::string_view secret = request.header("x-qase-secret");
  if (!auth.secret.empty() && !constant_time_equals(secret, auth.secret)) {
    return secret.empty() ? "missing X-Qase-Secret header" : "wrong X-Qase-Secret";
  }
  if (auth.signing_key) {
    const std::string_view id = request.header("webhook-id");
    const std::string_view timestamp = request.header("webhook-timestamp");
    const std::string_view signature = request.header("webhook-signature");
    Status s = body == nullptr ? check_standard_webhook_headers(id, timestamp, signature, now)
                               : verify_standard_webhook(*auth.signing_key, id, timestamp,
                                                         signature, *body, now);
    if (!s.is_ok()) return s.message();
  }
  return std::nullopt;
}

std::optional<ServerResponse> WebhookEndpoint::check_head(const ServerRequest& head) {
  auto failure = auth_failure(*current_auth(), head, nullptr, clock_.unix_seconds());
  if (!failure) return std::nullopt;
  return reject(head, 401, *failure, "unauthorized");
}

void WebhookEndpoint::handle(ServerRequest&& request, Respond respond) {
  const auto started = clock_.now();
  const std::int64_t now = clock_.unix_seconds();
  if (auto failure = auth_failure(*current_auth(), request, &request.body, now)) {
    return respond(reject(request, 401, *failure, "unauthorized"));
  }

  auto parsed = parse_webhook_event(request.body);
  if (!parsed) return respond(reject(request, 400, parsed.message(), "invalid"));

  auto delivery = std::make_shared<WebhookDelivery>();
  delivery->event = std::move(parsed).value();
  const std::string_view webhook_id = request.header("webhook-id");
  delivery->delivery_key =
      webhook_id.empty() ? "sha256:" + sha256_hex(request.body) : "id:" + std::string(webhook_id);
  delivery->received_at = now;
  delivery->body = std::move(request.body);
  if (delivery->event.known) {
    auto it = projects_.find(delivery->event.project_code);
    if (it != projects_.end()) delivery->event.observation.set(Field::kProjectId, it->second);
  }

  auto result = std::make_shared<WebhookResult>(WebhookResult::kIgnored);
  auto job = [delivery, result](Store& store) -> Status {
    auto r = store.journal().apply(*delivery);
    if (!r) return r.status();
    *result = r.value();
    return Status::ok();
  };
  auto done = [this, delivery, result, respond, started](const Status& s) {
    if (!s.is_ok()) {
      if (auto note = warnings_.admit("500")) {
        logger_->error("webhook {} for run {} not stored: {}; answered 500, the sender may retry{}",
                       log_text(delivery->event.event_name), delivery->event.run_id.value_or(0),
                       s.message(), *note);
      }
      events(delivery->event.event_name, kResultError).inc();
      respond(ServerResponse::error(500, "not stored: " + s.message()));
      return;
    }
    const char* name = webhook_result_name(*result);
    events(delivery->event.event_name, *result).inc();
    ack_latency_.observe(std::chrono::duration<double>(clock_.now() - started).count());
    logger_->debug("webhook {} run {} at {}: {}", log_text(delivery->event.event_name),
                   delivery->event.run_id.value_or(0), delivery->event.timestamp, name);
    respond(ServerResponse::json(200, std::string("{\"result\":\"") + name + "\"}"));
  };
  if (!writer_.try_submit(std::move(job), std::move(done))) {
    events(delivery->event.event_name, kResultBusy).inc();
    answer_queue_full(writer_, warnings_, logger_,
                      "answered 503 with Retry-After: 1; the sender should retry", respond);
  }
}

}  // namespace runsync
