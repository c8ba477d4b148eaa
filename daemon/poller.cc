#include "daemon/poller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>
#include <unordered_set>

#include "core/testrail_api.h"

namespace runsync {
namespace {

std::string describe(const ApiError& e) { return e.describe(); }

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

Poller::Poller(PollerOptions options, TestRailClient& client, Writer& writer, Metrics& metrics,
               Logger logger, UnixClock clock)
    : options_(std::move(options)),
      client_(client),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(std::move(clock)) {
  for (const auto& p : options_.projects) state_[p.id];
}

std::int64_t observation_time(const std::optional<std::int64_t>& server_date,
                              std::int64_t arrived_at) {
  return server_date ? std::min(*server_date, arrived_at) : arrived_at;
}

void Poller::record_failure(CycleOutcome& out, std::string message, const ApiError* api) {
  if (!out.error) out.error = std::move(message);
  if (api && api->kind == ApiErrorKind::kConfig) {
    out.config_error = true;
    out.tls_error = api->http_status == 0;  // an untrusted certificate, not credentials
  }
}

void Poller::list_pages(const std::string& base, CycleOutcome& out, const PageHandler& take) {
  const std::string listing = base.substr(0, base.find('/'));
  PageCursor cursor(base);
  while (cursor.uri() && !out.error && !stop_) {
    auto response = client_.get(*cursor.uri());
    if (!response) {
      out.stats.requests += response.error().attempts;
      record_failure(out, listing + ": " + describe(response.error()), &response.error());
      return;
    }
    out.stats.requests += response->attempts;
    const std::int64_t at = observation_time(response->server_date, clock_());
    auto page = take(*response, at);
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

Status Poller::apply_page(std::span<const Observation> observations, CycleOutcome& out) {
  std::int64_t changed = 0;
  std::int64_t deleted = 0;
  const std::int64_t now = clock_();
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

void Poller::list_runs(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                       std::unordered_set<std::int64_t>& listed) {
  list_pages(listing("get_runs", project.id, kind), out,
             [&](const ApiResponse& response, std::int64_t at) -> StatusOr<ListedPage> {
               auto page = observe_runs_page(response.body, at, Source::kPoll);
               if (!page) {
                 return Status::error("get_runs: " + describe({ApiErrorKind::kBadResponse,
                                                               response.http_status, page.message(),
                                                               response.attempts}));
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
               if (Status st = apply_page(page->observations, out); !st.is_ok()) {
                 return Status::error("storing runs: " + st.message());
               }
               return listed_page;
             });
}

void Poller::poll_plans(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                        std::unordered_set<std::int64_t>& listed) {
  std::vector<std::int64_t> plan_ids;
  list_pages(listing("get_plans", project.id, kind), out,
             [&](const ApiResponse& response, std::int64_t) -> StatusOr<ListedPage> {
               auto page = parse_plans_page(response.body);
               if (!page) {
                 return Status::error("get_plans: " + describe({ApiErrorKind::kBadResponse,
                                                                response.http_status,
                                                                page.message(),
                                                                response.attempts}));
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
    const std::string where = "get_plan/" + std::to_string(plan_id);
    auto plan = client_.get_plan(plan_id);
    if (!plan) {
      out.stats.requests += plan.error().attempts;
      // A plan deleted since it was listed: its runs are refreshed later.
      if (plan.error().kind == ApiErrorKind::kNotFound) continue;
      record_failure(out, where + ": " + describe(plan.error()), &plan.error());
      return;
    }
    out.stats.requests += plan->attempts;
    ++out.stats.pages;
    const std::int64_t at = observation_time(plan->server_date, clock_());
    std::vector<Observation> observations;
    for (const auto& run : plan->value.runs) {
      auto o = observation_from_plan_run(run, plan->value, at, Source::kPoll);
      if (!o) {
        record_failure(out, where + " answered a run it cannot parse: " + o.message(), nullptr);
        return;
      }
      listed.insert(o->run_id);
      observations.push_back(std::move(o).value());
    }
    out.stats.runs_seen += static_cast<std::int64_t>(observations.size());
    if (Status s = apply_page(observations, out); !s.is_ok()) {
      record_failure(out, "storing plan runs: " + s.message(), nullptr);
    }
  }
}

void Poller::refresh_unlisted(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
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
    const std::string where = "get_run/" + std::to_string(run_id);
    auto run = client_.get_run(run_id);
    Observation o;
    if (run) {
      out.stats.requests += run->attempts;
      auto parsed = observation_from_api_run(run->value, observation_time(run->server_date, clock_()),
                                             Source::kPoll);
      if (!parsed) {
        record_failure(out, where + " answered a run it cannot parse: " + parsed.message(), nullptr);
        return;
      }
      o = std::move(parsed).value();
    } else if (run.error().kind == ApiErrorKind::kNotFound) {
      out.stats.requests += run.error().attempts;
      o = deletion_observation(run_id, Source::kPoll, clock_());
      logger_->info("run {} of project {}: get_run says it does not exist; marked deleted", run_id,
                    project.id);
    } else {
      out.stats.requests += run.error().attempts;
      record_failure(out, where + ": " + describe(run.error()), &run.error());
      return;
    }
    ++out.stats.runs_seen;
    if (Status st = apply_page({&o, 1}, out); !st.is_ok()) {
      record_failure(out, "storing run: " + st.message(), nullptr);
    }
  }
}

CycleOutcome Poller::run_cycle(const ProjectConfig& project, PollKind kind) {
  const auto started = std::chrono::steady_clock::now();
  CycleOutcome out;
  out.project_id = project.id;
  out.kind = kind;
  std::int64_t cycle_id = 0;
  const std::int64_t started_at = clock_();
  Status begun = writer_.run([&](Store& store) -> Status {
    auto id = store.poll_cycles().begin(project.id, kind, started_at);
    if (!id) return id.status();
    cycle_id = id.value();
    return Status::ok();
  });
  if (!begun.is_ok()) {
    out.error = "cannot record the cycle: " + begun.message();
    record(out);
    return out;
  }

  // Runs outside plans, then plans and their runs, each applied as it
  // arrives; then, only when every listing was complete, the known runs no
  // listing covered (SPEC §6 rule 4).
  std::unordered_set<std::int64_t> listed;
  list_runs(project, kind, out, listed);
  if (!out.error) poll_plans(project, kind, out, listed);
  if (!out.error && !stop_) refresh_unlisted(project, kind, out, listed);

  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (stop_) {
    // A clean stop is not a failure: the row stays unfinished, which
    // `runsync status` reports as interrupted.
    out.stopped = true;
    if (!out.error) out.error = "stopped before the cycle finished";
    record(out);
    return out;
  }
  const std::int64_t finished_at = clock_();
  Status finished = writer_.run([&](Store& store) {
    return store.poll_cycles().finish(cycle_id, out.stats, out.error, finished_at);
  });
  if (!finished.is_ok() && !out.error) out.error = "cannot record the cycle: " + finished.message();
  record(out);
  return out;
}

std::chrono::milliseconds Poller::config_retry_interval() const {
  return std::clamp(options_.poll_interval * 5, std::chrono::milliseconds(std::chrono::minutes(1)),
                    std::chrono::milliseconds(std::chrono::minutes(15)));
}

void Poller::record(const CycleOutcome& out) {
  const std::string project = std::to_string(out.project_id);
  const char* kind = poll_kind_name(out.kind);
  if (out.stopped) {
    logger_->info(
        "poll project {} ({}): stopped by shutdown after {:.2f}s, {} pages; left unfinished, "
        "nothing was deleted",
        out.project_id, kind, out.seconds, out.stats.pages);
    return;
  }
  const char* outcome = out.error ? (out.config_error ? "config_error" : "failed") : "ok";
  metrics_
      .counter("runsync_poll_cycles_total", "Poll cycles by project, kind and outcome",
               {{"project", project}, {"kind", kind}, {"outcome", outcome}})
      .inc();
  metrics_.histogram("runsync_poll_duration_seconds", "Duration of poll cycles", {{"kind", kind}})
      .observe(out.seconds);
  metrics_.counter("runsync_poll_runs_changed_total", "Runs changed by polling", {{"project", project}})
      .inc(static_cast<std::uint64_t>(out.stats.runs_changed));
  {
    std::lock_guard lock(mu_);
    ProjectState& st = state_[out.project_id];
    if (out.error) {
      st.last_error = out.error;
    } else {
      st.last_error.reset();
      st.last_success = std::chrono::steady_clock::now();
    }
  }
  if (!out.error) {
    metrics_
        .gauge("runsync_last_successful_poll_timestamp_seconds",
               "Unix time of the last successful poll cycle", {{"project", project}})
        .set(static_cast<double>(clock_()));
    logger_->info(
        "poll project {} ({}): ok in {:.2f}s, {} pages, {} requests, {} runs seen, {} changed, "
        "{} deleted",
        out.project_id, kind, out.seconds, out.stats.pages, out.stats.requests, out.stats.runs_seen,
        out.stats.runs_changed, out.stats.runs_deleted);
  } else {
    std::string next;
    if (scheduled_) {
      next = "; next attempt in " +
             seconds_text(out.config_error ? config_retry_interval() : options_.poll_interval);
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
}

void Poller::run() {
  using Clock = std::chrono::steady_clock;
  struct Due {
    Clock::time_point next;
    Clock::time_point next_full;
  };
  std::map<std::int64_t, Due> due;
  const auto start = Clock::now();
  for (const auto& p : options_.projects) due[p.id] = {start, start};
  const auto slow = config_retry_interval();
  scheduled_ = true;
  while (!stop_) {
    for (const auto& p : options_.projects) {
      if (stop_) break;
      Due& d = due[p.id];
      const auto now = Clock::now();
      if (now < d.next) continue;
      const PollKind kind = now >= d.next_full ? PollKind::kFull : PollKind::kActive;
      const CycleOutcome out = run_cycle(p, kind);
      const auto after = Clock::now();
      if (!out.error) {
        d.next = after + options_.poll_interval;
        if (kind == PollKind::kFull) d.next_full = after + options_.full_sync_interval;
      } else {
        d.next = after + (out.config_error ? slow : options_.poll_interval);
      }
    }
    auto next = Clock::time_point::max();
    for (const auto& [id, d] : due) next = std::min(next, d.next);
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, next, [&] { return stop_.load(); });
  }
}

void Poller::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  client_.stop();
}

std::optional<std::string> Poller::not_ready_reason() const {
  const auto limit = poll_stale_after(options_.poll_interval);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  for (const auto& [id, st] : state_) {
    if (st.last_error) return "project " + std::to_string(id) + ": last poll failed: " + *st.last_error;
    if (!st.last_success) return "project " + std::to_string(id) + ": no poll has succeeded yet";
    if (now - *st.last_success > limit) {
      return "project " + std::to_string(id) + ": no successful poll for over " +
             std::to_string(limit.count()) + "s";
    }
  }
  return std::nullopt;
}

}  // namespace runsync
