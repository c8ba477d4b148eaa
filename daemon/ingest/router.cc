#include "daemon/ingest/router.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace runsync {

Router::Router(std::string webhook_path, WebhookEndpoint& webhook, Writer& writer, Metrics& metrics,
               Logger logger)
    : webhook_path_(std::move(webhook_path)),
      webhook_(webhook),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)) {
  for (int code : {200, 202, 400, 401, 404, 405, 413, 415, 500, 503}) {
    responses_[code] = &metrics_.counter("runsync_http_responses_total",
                                         "HTTP responses by status code",
                                         {{"code", std::to_string(code)}});
  }
}

void Router::serve_hints(std::string path, HintEndpoint& hints) {
  hints_path_ = std::move(path);
  hints_ = &hints;
}

void Router::count_response(int status) {
  if (auto it = responses_.find(status); it != responses_.end()) return it->second->inc();
  metrics_
      .counter("runsync_http_responses_total", "HTTP responses by status code",
               {{"code", std::to_string(status)}})
      .inc();
}

std::optional<ServerResponse> Router::refusal(const ServerRequest& req) const {
  const std::string_view path = req.path();
  const bool get = req.method == "GET" || req.method == "HEAD";
  const char* allow = nullptr;
  if (path == webhook_path_ || (hints_ != nullptr && path == hints_path_)) {
    if (req.method != "POST") allow = "POST";
  } else if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    if (!get) allow = "GET, HEAD";
  } else {
    logger_->debug("{} {} from {}: 404", log_text(req.method), log_text(path), req.remote);
    return ServerResponse::error(404, "no such path: " + std::string(path));
  }
  if (allow == nullptr) return std::nullopt;
  ServerResponse r = ServerResponse::error(
      405, "method " + req.method + " not allowed on " + std::string(path) + "; use " + allow);
  r.headers.emplace_back("Allow", allow);
  logger_->debug("{} {} from {}: 405", log_text(req.method), log_text(path), req.remote);
  return r;
}

std::optional<ServerResponse> Router::answer_from_head(const ServerRequest& head) {
  auto answer = refusal(head);
  if (!answer && head.path() == webhook_path_) answer = webhook_.check_head(head);
  if (!answer && hints_ != nullptr && head.path() == hints_path_) answer = hints_->check_head(head);
  if (answer) count_response(answer->status);
  return answer;
}

void Router::handle(ServerRequest&& req, Respond respond) {
  Respond counted = [this, respond = std::move(respond)](ServerResponse r) {
    count_response(r.status);
    respond(std::move(r));
  };
  if (auto answer = refusal(req)) return counted(std::move(*answer));
  const std::string_view path = req.path();
  if (path == webhook_path_) return webhook_.handle(std::move(req), std::move(counted));
  if (hints_ != nullptr && path == hints_path_) {
    return hints_->handle(std::move(req), std::move(counted));
  }
  if (path == "/healthz") return counted(ServerResponse::json(200, R"({"status":"ok"})"));
  if (path == "/readyz") return ready(std::move(counted));
  ServerResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.render();
  counted(std::move(r));
}

void Router::ready(Respond respond) {
  auto not_ready = [](const std::string& reason) {
    return ServerResponse::json(
        503, nlohmann::json{{"status", "not ready"}, {"reason", reason}}.dump());
  };
  // Writable means a write commits now: the probe writes a page, so a full
  // disk, a read-only file or a failed sync shows, as it does for webhooks.
  auto probe = [](Store& store) { return store.probe_write(); };
  auto done = [respond, not_ready](const Status& s) {
    respond(s.is_ok() ? ServerResponse::json(200, R"({"status":"ready"})")
                      : not_ready("database is not writable: " + s.message()));
  };
  if (!writer_.try_submit(probe, done)) respond(not_ready("ingest queue is full"));
}

}  // namespace runsync
