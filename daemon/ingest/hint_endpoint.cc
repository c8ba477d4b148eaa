#include "daemon/ingest/hint_endpoint.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "daemon/ingest/queue_full.h"
#include "daemon/ingest/signature.h"  // constant_time_equals

namespace runsync {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

const char* hint_result_name(HintResult result) {
  switch (result) {
    case HintResult::kQueued:
      return "queued";
    case HintResult::kIgnored:
      return "ignored";
    case HintResult::kInvalid:
      return "invalid";
    case HintResult::kUnauthorized:
      return "unauthorized";
    case HintResult::kBusy:
      return "busy";
    case HintResult::kError:
      return "error";
  }
  return "error";
}

HintEndpoint::HintEndpoint(HintEndpointOptions options, Writer& writer, Metrics& metrics,
                           Logger logger, const Clock& clock, std::function<void()> on_queued)
    : options_(std::move(options)),
      header_lower_(lower(options_.secret_header)),
      secret_(std::make_shared<const std::string>(options_.secret)),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(clock),
      on_queued_(std::move(on_queued)),
      warnings_(clock) {
  for (std::size_t i = 0; i < results_.size(); ++i) {
    results_[i] = &metrics_.counter("runsync_testrail_hints_total",
                                    "TestRail webhook deliveries (hints) by result",
                                    {{"result", hint_result_name(static_cast<HintResult>(i))}});
  }
}

Counter& HintEndpoint::hints(HintResult result) { return *results_[static_cast<std::size_t>(result)]; }

void HintEndpoint::set_secret(std::string secret) {
  auto next = std::make_shared<const std::string>(std::move(secret));
  std::lock_guard lock(secret_mu_);
  secret_ = std::move(next);
}

ServerResponse HintEndpoint::reject(const ServerRequest& request, int status,
                                    const std::string& reason, HintResult result) {
  hints(result).inc();
  if (status == 401) {
    if (auto note = warnings_.admit("401")) {
      logger_->warn("TestRail webhook from {} refused (401): {}; add the header {} with the "
                    "secret to the webhook in TestRail{}",
                    request.remote, reason, options_.secret_header, *note);
    }
  } else if (auto note = warnings_.admit(std::to_string(status))) {
    // TestRail shows the answer in its webhook log; say here what to fix too.
    logger_->warn("TestRail webhook from {} refused ({}): {}{}", request.remote, status,
                  log_text(reason), *note);
  }
  return ServerResponse::error(status, reason);
}

std::optional<ServerResponse> HintEndpoint::refuse_unauthenticated(const ServerRequest& request) {
  std::shared_ptr<const std::string> secret;
  {
    std::lock_guard lock(secret_mu_);
    secret = secret_;
  }
  if (secret->empty()) return std::nullopt;
  const std::string_view given = request.header(header_lower_);
  if (constant_time_equals(given, *secret)) return std::nullopt;
  return reject(request, 401,
                given.empty() ? "missing " + options_.secret_header + " header"
                              : "wrong " + options_.secret_header,
                HintResult::kUnauthorized);
}

std::optional<ServerResponse> HintEndpoint::check_head(const ServerRequest& head) {
  return refuse_unauthenticated(head);
}

void HintEndpoint::handle(ServerRequest&& request, Respond respond) {
  if (auto refused = refuse_unauthenticated(request)) return respond(std::move(*refused));
  auto format = hint_format(request.header("content-type"));
  if (!format) return respond(reject(request, 415, format.message(), HintResult::kInvalid));
  auto parsed = parse_hint(request.body, *format, options_.pointers);
  if (!parsed) return respond(reject(request, 400, parsed.message(), HintResult::kInvalid));
  const Hint hint = *parsed;
  if (hint.project_id && !options_.projects.contains(*hint.project_id)) {
    hints(HintResult::kIgnored).inc();
    logger_->debug("TestRail webhook from {} for project {}: not mirrored, ignored", request.remote,
                   *hint.project_id);
    return respond(ServerResponse::json(200, R"({"result":"ignored"})"));
  }

  const HintKind kind = hint.kind();
  const std::int64_t id = hint.id();
  const std::int64_t at_ms = clock_.unix_ms();
  auto job = [kind, id, at_ms](Store& store) { return store.hints().add(kind, id, at_ms); };
  auto done = [this, kind, id, respond](const Status& s) {
    if (!s.is_ok()) {
      hints(HintResult::kError).inc();
      if (auto note = warnings_.admit("500")) {
        logger_->error("TestRail webhook for {} {} not stored: {}; answered 500, TestRail may "
                       "retry{}",
                       hint_kind_name(kind), id, s.message(), *note);
      }
      return respond(ServerResponse::error(500, "not stored: " + s.message()));
    }
    hints(HintResult::kQueued).inc();
    logger_->debug("TestRail webhook: {} {} queued for a refresh", hint_kind_name(kind), id);
    if (on_queued_) on_queued_();
    respond(ServerResponse::json(202, R"({"result":"queued"})"));
  };
  if (!writer_.try_submit(std::move(job), std::move(done))) {
    hints(HintResult::kBusy).inc();
    answer_queue_full(writer_, warnings_, logger_,
                      "TestRail webhook answered 503 with Retry-After: 1", respond);
  }
}

}  // namespace runsync
