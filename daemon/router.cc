#include "daemon/router.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace runsync {

Router::Router(std::string webhook_path, WebhookEndpoint& webhook, Writer& writer, Metrics& metrics,
               Logger logger, ReadinessCheck readiness)
    : webhook_path_(std::move(webhook_path)),
      webhook_(webhook),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      readiness_(std::move(readiness)) {
  for (int code : {200, 400, 401, 404, 405, 413, 500, 503}) {
    responses_[code] = &metrics_.counter("runsync_http_responses_total",
                                         "HTTP responses by status code",
                                         {{"code", std::to_string(code)}});
  }
}

void Router::count_response(int status) {
  if (auto it = responses_.find(status); it != responses_.end()) return it->second->inc();
  metrics_
      .counter("runsync_http_responses_total", "HTTP responses by status code",
               {{"code", std::to_string(status)}})
      .inc();
}

void Router::handle(ServerRequest&& req, Respond respond) {
  Respond counted = [this, respond = std::move(respond)](ServerResponse r) {
    count_response(r.status);
    respond(std::move(r));
  };
  const std::string path(req.path());
  const bool get = req.method == "GET" || req.method == "HEAD";
  auto method_not_allowed = [&](const char* allow) {
    ServerResponse r = ServerResponse::error(
        405, "method " + req.method + " not allowed on " + path + "; use " + allow);
    r.headers.emplace_back("Allow", allow);
    logger_->debug("{} {} from {}: 405", req.method, path, req.remote);
    counted(std::move(r));
  };
  if (path == webhook_path_) {
    if (req.method != "POST") return method_not_allowed("POST");
    return webhook_.handle(std::move(req), std::move(counted));
  }
  if (path == "/healthz") {
    if (!get) return method_not_allowed("GET, HEAD");
    return counted(ServerResponse::json(200, R"({"status":"ok"})"));
  }
  if (path == "/readyz") {
    if (!get) return method_not_allowed("GET, HEAD");
    return ready(std::move(counted));
  }
  if (path == "/metrics") {
    if (!get) return method_not_allowed("GET, HEAD");
    ServerResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.render();
    return counted(std::move(r));
  }
  logger_->debug("{} {} from {}: 404", req.method, path, req.remote);
  counted(ServerResponse::error(404, "no such path: " + path));
}

void Router::ready(Respond respond) {
  auto not_ready = [](const std::string& reason) {
    return ServerResponse::json(
        503, nlohmann::json{{"status", "not ready"}, {"reason", reason}}.dump());
  };
  if (readiness_) {
    if (auto reason = readiness_()) return respond(not_ready(*reason));
  }
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
