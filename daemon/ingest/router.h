// Maps HTTP requests to the daemon's endpoints (SPEC §4, §4a): the webhook
// path, TestRail's webhook path when served, /healthz, /readyz and
// /metrics; 404 and 405 otherwise. Counts every
// response by status code.
//
// Thread safety: handle() runs on the HTTP thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "daemon/ingest/hint_endpoint.h"
#include "daemon/http/http_server.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/ingest/webhook_endpoint.h"
#include "storage/writer.h"

namespace runsync {

class Router {
 public:
  // Every reference must outlive the router. /readyz is 503 unless a write
  // to the database commits (SPEC §4); TestRail's health is not part of it.
  Router(std::string webhook_path, WebhookEndpoint& webhook, Writer& writer, Metrics& metrics,
         Logger logger);

  // Also serves TestRail's webhooks (hints) at `path`, from before the
  // server starts; `hints` must outlive the router.
  void serve_hints(std::string path, HintEndpoint& hints);

  // Answers a request from its head alone when that settles it: 404, 405,
  // or the webhook endpoint's 401 (see WebhookEndpoint::check_head). The
  // answer is counted and logged; nullopt when the body is needed.
  std::optional<ServerResponse> answer_from_head(const ServerRequest& head);
  void handle(ServerRequest&& request, Respond respond);
  // Counts a response sent without the router (e.g. 413 from the session).
  void count_response(int status);

 private:
  // 404 or 405 (logged, not counted) when no endpoint takes this
  // method and path; nullopt otherwise.
  std::optional<ServerResponse> refusal(const ServerRequest& request) const;
  void ready(Respond respond);

  std::string webhook_path_;
  WebhookEndpoint& webhook_;
  std::string hints_path_;            // empty: not served
  HintEndpoint* hints_ = nullptr;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  std::map<int, Counter*> responses_;  // common codes, looked up once; read-only after construction
};

}  // namespace runsync
