#include "daemon/testrail/project_cycle.h"

#include <spdlog/spdlog.h>

#include <string_view>

namespace runsync {
namespace {

// "0.5 s", "2 s", "90 s": how long until the next try, for log lines.
std::string seconds_text(std::chrono::milliseconds wait) {
  const auto ms = wait.count();
  if (ms % 1000 == 0 || ms >= 10'000) return std::to_string((ms + 500) / 1000) + " s";
  return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0);
}

// The listing `endpoint` ("get_runs", "get_plans") of a project, as a
// cycle of `kind` asks for it: an active cycle lists active items only.
std::string listing(std::string_view endpoint, std::int64_t project_id, PollKind kind) {
  std::string base = std::string(endpoint) + "/" + std::to_string(project_id);
  if (kind == PollKind::kActive) base += "&is_completed=0";
  return base;
}

}  // namespace

ApiObserver make_api_observer(Metrics& metrics, Logger logger) {
  Histogram& latency = metrics.histogram("runsync_api_request_seconds",
                                         "Latency of TestRail API requests");
  for (const char* reason : {"rate_limit", "retry-after", "backoff"}) {
    metrics.counter("runsync_api_waits_total", "Waits before API requests, by reason",
                    {{"reason", reason}});
  }
  return [&metrics, &latency, logger](const ApiEvent& e) {
    switch (e.kind) {
      case ApiEvent::Kind::kAnswer:
        metrics
            .counter("runsync_api_requests_total", "TestRail API requests by HTTP status",
                     {{"status", std::to_string(e.http_status)}})
            .inc();
        latency.observe(std::chrono::duration<double>(e.latency).count());
        logger->debug("api {} {} attempt {}: HTTP {} in {} ms", e.method, e.uri, e.attempt,
                      e.http_status, e.latency.count());
        break;
      case ApiEvent::Kind::kTransportError:
        metrics
            .counter("runsync_api_requests_total", "TestRail API requests by HTTP status",
                     {{"status", "error"}})
            .inc();
        latency.observe(std::chrono::duration<double>(e.latency).count());
        logger->debug("api {} {} attempt {}: no answer: {}", e.method, e.uri, e.attempt,
                      e.message);
        break;
      case ApiEvent::Kind::kWait:
        metrics
            .counter("runsync_api_waits_total", "Waits before API requests, by reason",
                     {{"reason", e.reason}})
            .inc();
        if (e.reason == "rate_limit") {
          logger->debug("api: waiting {} ms to stay under max_requests_per_minute", e.wait.count());
        } else {
          const std::string cause = e.http_status != 0
                                        ? "HTTP " + std::to_string(e.http_status)
                                        : "no answer (" + e.message + ")";
          logger->warn("api {} {}: attempt {} got {}; retrying in {}{}", e.method, e.uri,
                       e.attempt, cause, seconds_text(e.wait),
                       e.reason == "retry-after" ? " as Retry-After asks" : "");
        }
        break;
      case ApiEvent::Kind::kFailure:
        logger->debug("api {} {} failed: {}", e.method, e.uri,
                      e.error ? e.error->describe() : std::string("unknown"));
        break;
    }
  };
}

namespace {

// `error` with its message made the one line a log or a cycle's error gives:
// the request, then what went wrong.
ApiError named(const std::string& where, ApiError error) {
  error.message = where + ": " + error.describe();
  return error;
}

}  // namespace

ApiResult<FetchedRun> fetch_run(TestRailClient& client, std::int64_t run_id, Source source,
                                std::int64_t now) {
  const std::string where = "get_run/" + std::to_string(run_id);
  auto run = client.get_run(run_id);
  if (!run) {
    if (run.error().kind != ApiErrorKind::kNotFound) return named(where, run.error());
    return FetchedRun{deletion_observation(run_id, source, now), true, std::nullopt,
                      run.error().attempts};
  }
  auto o = observation_from_api_run(run->value, run->observed_at, source);
  if (!o) {
    return ApiError{ApiErrorKind::kBadResponse, 200,
                    where + " answered a run it cannot parse: " + o.message(), run->attempts};
  }
  std::optional<std::int64_t> project_id;
  if (const auto& p = o->get(Field::kProjectId); p && std::holds_alternative<std::int64_t>(*p)) {
    project_id = std::get<std::int64_t>(*p);
  }
  return FetchedRun{std::move(o).value(), false, project_id, run->attempts};
}

ApiResult<FetchedPlan> fetch_plan(TestRailClient& client, std::int64_t plan_id, Source source) {
  const std::string where = "get_plan/" + std::to_string(plan_id);
  auto plan = client.get_plan(plan_id);
  if (!plan) {
    if (plan.error().kind != ApiErrorKind::kNotFound) return named(where, plan.error());
    return FetchedPlan{{}, true, plan.error().attempts};
  }
  FetchedPlan out{{}, false, plan->attempts};
  out.runs.reserve(plan->value.runs.size());
  for (const auto& run : plan->value.runs) {
    auto o = observation_from_plan_run(run, plan->value, plan->observed_at, source);
    if (!o) {
      return ApiError{ApiErrorKind::kBadResponse, 200,
                      where + " answered a run it cannot parse: " + o.message(), plan->attempts};
    }
    out.runs.push_back(std::move(o).value());
  }
  return out;
}

namespace {

void record_failure(CycleOutcome& out, std::string message, const ApiError* api) {
  if (!out.error) out.error = std::move(message);
  if (api && api->kind == ApiErrorKind::kConfig) {
    out.config_error = true;
    out.tls_error = api->http_status == 0;  // an untrusted certificate, not credentials
  }
}

Counter& cycles_counter(Metrics& metrics, const std::string& project, PollKind kind,
                        PollOutcome outcome) {
  return metrics.counter("runsync_poll_cycles_total", "Poll cycles by project, kind and outcome",
                         {{"project", project},
                          {"kind", poll_kind_name(kind)},
                          {"outcome", poll_outcome_name(outcome)}});
}

Counter& changed_counter(Metrics& metrics, const std::string& project) {
  return metrics.counter("runsync_poll_runs_changed_total", "Runs changed by polling",
                         {{"project", project}});
}

Histogram& duration_histogram(Metrics& metrics, PollKind kind) {
  return metrics.histogram("runsync_poll_duration_seconds", "Duration of poll cycles",
                           {{"kind", poll_kind_name(kind)}}, poll_duration_buckets());
}

}  // namespace

const char* poll_outcome_name(PollOutcome outcome) {
  switch (outcome) {
    case PollOutcome::kOk:
      return "ok";
    case PollOutcome::kFailed:
      return "failed";
    case PollOutcome::kConfigError:
      return "config_error";
  }
  return "failed";
}

ProjectCycle::ProjectCycle(TestRailClient& client, Writer& writer, Metrics& metrics, Logger logger,
                           const Clock& clock)
    : client_(client),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(clock) {}

void ProjectCycle::declare_metrics(Metrics& metrics, const ProjectConfig& project) {
  const std::string id = std::to_string(project.id);
  for (const PollKind kind : {PollKind::kActive, PollKind::kFull}) {
    for (const PollOutcome outcome : kPollOutcomes) cycles_counter(metrics, id, kind, outcome);
    duration_histogram(metrics, kind);
  }
  changed_counter(metrics, id);
}

void ProjectCycle::stop() {
  stop_ = true;
  client_.stop();
}

void ProjectCycle::list_pages(const std::string& base, CycleOutcome& out,
                              const PageHandler& take) {
  const std::string listing = base.substr(0, base.find('/'));
  PageCursor cursor(base);
  while (cursor.uri() && !out.error && !stop_) {
    auto response = client_.get(*cursor.uri());
    if (!response) {
      out.stats.requests += response.error().attempts;
      record_failure(out, listing + ": " + response.error().describe(), &response.error());
      return;
    }
    out.stats.requests += response->attempts;
    auto page = take(*response);
    if (!page) {
      record_failure(out, page.message(), nullptr);
      return;
    }
    ++out.stats.pages;
    if (Status s = cursor.advance(page->bare, page->next, std::move(page->ids)); !s.is_ok()) {
      record_failure(out, s.message(), nullptr);
      return;
    }
  }
}

Status ProjectCycle::apply(std::span<const Observation> observations, CycleOutcome& out) {
  std::int64_t changed = 0;
  std::int64_t deleted = 0;
  const std::int64_t now = clock_.unix_seconds();
  Status s = writer_.run([&](Store& store) -> Status {
    changed = 0;
    deleted = 0;
    auto results = store.runs().apply_all(observations, now);
    if (!results) return results.status();
    for (std::size_t i = 0; i < observations.size(); ++i) {
      if ((*results)[i].changed) {
        ++changed;
        if (observations[i].state == StateClaim::kDeleted) ++deleted;
      }
    }
    return Status::ok();
  });
  if (s.is_ok()) {
    out.stats.runs_changed += changed;
    out.stats.runs_deleted += deleted;
  }
  return s;
}

void ProjectCycle::list_runs(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                             std::unordered_set<std::int64_t>& listed) {
  list_pages(listing("get_runs", project.id, kind), out,
             [&](const ApiResponse& response) -> StatusOr<ListedPage> {
               auto page =
                   observe_runs_page(response.body, project.id, response.observed_at, Source::kPoll);
               if (!page) {
                 return Status::error("get_runs: " + ApiError{ApiErrorKind::kBadResponse,
                                                              response.http_status, page.message(),
                                                              response.attempts}
                                                         .describe());
               }
               if (page->run_error) {
                 return Status::error("get_runs answered a run it cannot parse: " +
                                      *page->run_error);
               }
               ListedPage listed_page{page->bare, std::move(page->next), {}};
               listed_page.ids.reserve(page->observations.size());
               for (const Observation& o : page->observations) {
                 listed.insert(o.run_id);
                 listed_page.ids.push_back(o.run_id);
               }
               out.stats.runs_seen += static_cast<std::int64_t>(page->observations.size());
               if (Status st = apply(page->observations, out); !st.is_ok()) {
                 return Status::error("storing runs: " + st.message());
               }
               return listed_page;
             });
}

void ProjectCycle::poll_plans(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                              std::unordered_set<std::int64_t>& listed) {
  std::vector<std::int64_t> plan_ids;
  list_pages(listing("get_plans", project.id, kind), out,
             [&](const ApiResponse& response) -> StatusOr<ListedPage> {
               auto page = parse_plans_page(response.body);
               if (!page) {
                 return Status::error("get_plans: " + ApiError{ApiErrorKind::kBadResponse,
                                                               response.http_status,
                                                               page.message(), response.attempts}
                                                          .describe());
               }
               ListedPage listed_page{page->bare, std::move(page->next), {}};
               for (const auto& plan : page->plans) {
                 auto id = plan.find("id");
                 if (id == plan.end() || !id->is_number_integer()) {
                   return Status::error("get_plans answered a plan without an integer id");
                 }
                 listed_page.ids.push_back(id->get<std::int64_t>());
               }
               plan_ids.insert(plan_ids.end(), listed_page.ids.begin(), listed_page.ids.end());
               return listed_page;
             });
  for (std::int64_t plan_id : plan_ids) {
    if (out.error || stop_) return;
    auto plan = fetch_plan(client_, plan_id, Source::kPoll);
    if (!plan) {
      out.stats.requests += plan.error().attempts;
      record_failure(out, plan.error().message, &plan.error());
      return;
    }
    out.stats.requests += plan->attempts;
    // A plan deleted since it was listed: its runs are refreshed later.
    if (plan->gone) continue;
    out.covered_plans.insert(plan_id);
    ++out.stats.pages;
    for (const Observation& o : plan->runs) listed.insert(o.run_id);
    out.stats.runs_seen += static_cast<std::int64_t>(plan->runs.size());
    if (Status s = apply(plan->runs, out); !s.is_ok()) {
      record_failure(out, "storing plan runs: " + s.message(), nullptr);
    }
  }
}

void ProjectCycle::refresh_unlisted(const ProjectConfig& project, PollKind kind,
                                    CycleOutcome& out,
                                    const std::unordered_set<std::int64_t>& listed) {
  std::vector<KnownRun> known;
  Status s = writer_.run([&](Store& store) -> Status {
    auto k = store.runs().known_runs(project.id, project.code,
                                     /*with_polled=*/kind != PollKind::kFull);
    if (!k) return k.status();
    known = std::move(k).value();
    return Status::ok();
  });
  if (!s.is_ok()) {
    record_failure(out, "reading known runs: " + s.message(), nullptr);
    return;
  }
  for (std::int64_t run_id : runs_to_refresh(known, listed, kind)) {
    if (out.error || stop_) return;
    auto run = fetch_run(client_, run_id, Source::kPoll, clock_.unix_seconds());
    if (!run) {
      out.stats.requests += run.error().attempts;
      record_failure(out, run.error().message, &run.error());
      return;
    }
    out.stats.requests += run->attempts;
    if (run->gone) {
      logger_->info("run {} of project {}: get_run says it does not exist; marked deleted", run_id,
                    project.id);
    }
    ++out.stats.runs_seen;
    if (Status st = apply({&run->observation, 1}, out); !st.is_ok()) {
      record_failure(out, "storing run: " + st.message(), nullptr);
    } else {
      out.covered_runs.insert(run_id);
    }
  }
}

CycleOutcome ProjectCycle::run(const ProjectConfig& project, PollKind kind,
                               std::optional<RetrySchedule> retry) {
  const auto started = clock_.now();
  CycleOutcome out;
  out.project_id = project.id;
  out.kind = kind;
  std::int64_t cycle_id = 0;
  const std::int64_t started_at = clock_.unix_seconds();
  Status begun = writer_.run([&](Store& store) -> Status {
    auto id = store.poll_cycles().begin(project.id, kind, started_at);
    if (!id) return id.status();
    cycle_id = id.value();
    return Status::ok();
  });
  if (!begun.is_ok()) {
    out.error = "cannot record the cycle: " + begun.message();
    report(out, retry);
    return out;
  }

  // Runs outside plans, then plans and their runs, each applied as it
  // arrives; then, only when every listing was complete, the known runs no
  // listing covered (SPEC §6 rule 4).
  std::unordered_set<std::int64_t> listed;
  list_runs(project, kind, out, listed);
  if (!out.error) poll_plans(project, kind, out, listed);
  if (!out.error && !stop_) refresh_unlisted(project, kind, out, listed);
  out.covered_runs.insert(listed.begin(), listed.end());

  out.seconds = std::chrono::duration<double>(clock_.now() - started).count();
  if (stop_) {
    // A clean stop is not a failure: the row stays unfinished, which
    // `runsync status` reports as interrupted.
    out.stopped = true;
    if (!out.error) out.error = "stopped before the cycle finished";
    report(out, retry);
    return out;
  }
  const std::int64_t finished_at = clock_.unix_seconds();
  Status finished = writer_.run([&](Store& store) {
    return store.poll_cycles().finish(cycle_id, out.stats, out.error, finished_at);
  });
  if (!finished.is_ok() && !out.error) out.error = "cannot record the cycle: " + finished.message();
  report(out, retry);
  return out;
}

void ProjectCycle::report(const CycleOutcome& out, const std::optional<RetrySchedule>& retry) {
  const std::string project = std::to_string(out.project_id);
  const char* kind = poll_kind_name(out.kind);
  if (out.stopped) {
    logger_->info(
        "poll project {} ({}): stopped by shutdown after {:.2f}s, {} pages; left unfinished, "
        "nothing was deleted",
        out.project_id, kind, out.seconds, out.stats.pages);
    return;
  }
  const PollOutcome outcome = !out.error         ? PollOutcome::kOk
                              : out.config_error ? PollOutcome::kConfigError
                                                 : PollOutcome::kFailed;
  cycles_counter(metrics_, project, out.kind, outcome).inc();
  duration_histogram(metrics_, out.kind).observe(out.seconds);
  changed_counter(metrics_, project).inc(static_cast<std::uint64_t>(out.stats.runs_changed));
  if (!out.error) {
    metrics_
        .gauge("runsync_last_successful_poll_timestamp_seconds",
               "Unix time of the last successful poll cycle", {{"project", project}})
        .set(static_cast<double>(clock_.unix_seconds()));
    logger_->info(
        "poll project {} ({}): ok in {:.2f}s, {} pages, {} requests, {} runs seen, {} changed, "
        "{} deleted",
        out.project_id, kind, out.seconds, out.stats.pages, out.stats.requests, out.stats.runs_seen,
        out.stats.runs_changed, out.stats.runs_deleted);
    return;
  }
  std::string next;
  if (retry) {
    next = "; next attempt in " +
           seconds_text(out.config_error ? retry->after_config_error : retry->after_failure);
  }
  if (out.config_error) {
    logger_->error("poll project {} ({}): FAILED, configuration error: {}{}{}", out.project_id,
                   kind, *out.error,
                   out.tls_error ? ""
                                 : "; check testrail.user, the API key and the user's access "
                                   "to the project",
                   next);
  } else {
    logger_->warn(
        "poll project {} ({}): FAILED after {:.2f}s, {} pages, {} requests, {} changed: {}; "
        "nothing was deleted{}",
        out.project_id, kind, out.seconds, out.stats.pages, out.stats.requests,
        out.stats.runs_changed, *out.error, next);
  }
}

}  // namespace runsync
