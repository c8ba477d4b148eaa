#include "daemon/testrail/refresher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/testrail_api.h"

namespace runsync {
namespace {

using Clock = std::chrono::steady_clock;

Counter& refreshes(Metrics& metrics, HintKind kind, RefreshOutcome outcome) {
  return metrics.counter("runsync_hint_refreshes_total",
                         "Refreshes TestRail webhook hints asked for, by kind and outcome",
                         {{"kind", hint_kind_name(kind)}, {"outcome", refresh_outcome_name(outcome)}});
}

std::optional<std::int64_t> project_of(const Observation& run) {
  const auto& p = run.get(Field::kProjectId);
  if (!p || !std::holds_alternative<std::int64_t>(*p)) return std::nullopt;
  return std::get<std::int64_t>(*p);
}

}  // namespace

const char* refresh_outcome_name(RefreshOutcome outcome) {
  switch (outcome) {
    case RefreshOutcome::kChanged:
      return "changed";
    case RefreshOutcome::kUnchanged:
      return "unchanged";
    case RefreshOutcome::kDeleted:
      return "deleted";
    case RefreshOutcome::kIgnored:
      return "ignored";
    case RefreshOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

Refresher::Refresher(RefresherOptions options, TestRailClient& client,
                     ProjectCycle& project_cycle,
                     Writer& writer, Metrics& metrics, Logger logger, MillisClock clock,
                     SteadyClock steady)
    : options_(std::move(options)),
      client_(client),
      project_cycle_(project_cycle),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(std::move(clock)),
      steady_(std::move(steady)),
      latency_(metrics.histogram("runsync_hint_to_mirror_seconds",
                                 "Time from a TestRail webhook hint to the refresh that served it",
                                 {}, {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800})),
      warnings_(steady_) {
  for (HintKind kind : {HintKind::kRun, HintKind::kPlan, HintKind::kProject}) {
    for (const RefreshOutcome outcome : kRefreshOutcomes) refreshes(metrics_, kind, outcome);
  }
}

void Refresher::notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  wake_.notify_all();
}

void Refresher::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  project_cycle_.stop();  // also stops the client it shares with us
  client_.stop();
}

void Refresher::run() {
  while (!stop_) {
    const auto next = refresh_due();
    std::unique_lock lock(mu_);
    auto woken = [&] { return stop_ || notified_; };
    if (next) {
      wake_.wait_until(lock, *next, woken);
    } else {
      wake_.wait(lock, woken);
    }
    notified_ = false;
  }
}

std::optional<Clock::time_point> Refresher::refresh_due() {
  std::vector<PendingRefresh> rows;
  Status read = writer_.run([&](Store& store) -> Status {
    // The rows still waiting for a window are skipped: read past them.
    auto oldest = store.hints().oldest(options_.batch +
                                       static_cast<std::int64_t>(not_before_.size()));
    if (!oldest) return oldest.status();
    rows = std::move(oldest).value();
    return Status::ok();
  });
  const auto now = steady_();
  if (!read.is_ok()) {
    if (auto note = warnings_.admit("read")) {
      logger_->error("hint refresher: cannot read pending refreshes: {}; retrying in {}{}",
                     read.message(), render_duration(options_.retry_interval), *note);
    }
    return now + options_.retry_interval;
  }
  std::erase_if(not_before_, [&](const auto& entry) { return entry.second <= now; });
  std::optional<Clock::time_point> next;
  bool refreshed = false;
  for (const PendingRefresh& row : rows) {
    if (stop_) break;
    const Key key{row.kind, row.id};
    if (auto it = not_before_.find(key); it != not_before_.end() && it->second > steady_()) {
      next = next ? std::min(*next, it->second) : it->second;
      continue;
    }
    const auto started = steady_();
    const RefreshOutcome outcome = refresh(row);
    refreshes(metrics_, row.kind, outcome).inc();
    refreshed = true;
    if (outcome == RefreshOutcome::kFailed) {
      not_before_[key] = started + retry_delay(++failures_[key]);
    } else {
      failures_.erase(key);
      not_before_[key] = started + options_.min_refresh_interval;
    }
  }
  if (refreshed) return steady_();
  return next;
}

std::int64_t Refresher::unix_seconds() const { return clock_() / 1000; }

RefreshOutcome Refresher::refresh(const PendingRefresh& row) {
  const std::int64_t began_ms = clock_();
  switch (row.kind) {
    case HintKind::kRun:
      return refresh_run(row, began_ms);
    case HintKind::kPlan:
      return refresh_plan(row, began_ms);
    case HintKind::kProject:
      return refresh_project(row, began_ms);
  }
  return RefreshOutcome::kFailed;
}

std::chrono::milliseconds Refresher::retry_delay(int failures) const {
  const auto longest = std::max<std::chrono::milliseconds>(options_.max_retry_interval,
                                                           options_.retry_interval);
  auto delay = std::max(options_.retry_interval, options_.min_refresh_interval);
  for (int i = 1; i < failures && delay < longest; ++i) delay *= 2;
  return std::min(delay, longest);
}

const ProjectConfig* Refresher::project(std::int64_t id) const {
  for (const ProjectConfig& p : options_.projects) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

void Refresher::warn_failure(const PendingRefresh& row, const std::string& message) {
  if (stop_) return;
  if (auto note = warnings_.admit("failed")) {
    const auto it = failures_.find({row.kind, row.id});
    const int failures = (it == failures_.end() ? 0 : it->second) + 1;
    logger_->warn("hint refresh of {} {} failed: {}; it stays pending and is retried in {}{}",
                  hint_kind_name(row.kind), row.id, message,
                  render_duration(retry_delay(failures)), *note);
  }
}

void Refresher::observe_latency(const PendingRefresh& row, bool gone) {
  if (!gone) return;  // a newer hint came meanwhile: its own refresh will tell
  latency_.observe(static_cast<double>(std::max<std::int64_t>(0, clock_() - row.first_hint_at_ms)) /
                   1000.0);
}

RefreshOutcome Refresher::finish(const PendingRefresh& row, std::int64_t began_ms,
                              RefreshOutcome outcome, bool drop,
                              const std::function<Status(Store&)>& also) {
  bool gone = false;
  Status s = writer_.run([&](Store& store) -> Status {
    if (also) {
      if (Status st = also(store); !st.is_ok()) return st;
    }
    if (drop) return store.hints().drop(row.kind, row.id);
    auto done = store.hints().served(row, began_ms);
    if (!done) return done.status();
    gone = done.value();
    return Status::ok();
  });
  if (!s.is_ok()) {
    warn_failure(row, "storing the refresh: " + s.message());
    return RefreshOutcome::kFailed;
  }
  observe_latency(row, gone);
  return outcome;
}

RefreshOutcome Refresher::apply(const PendingRefresh& row, std::int64_t began_ms,
                             const std::vector<Observation>& observations,
                             const std::function<Status(Store&)>& also) {
  bool changed = false;
  const std::int64_t now = unix_seconds();
  const RefreshOutcome outcome = finish(row, began_ms, RefreshOutcome::kUnchanged, false, [&](Store& store) -> Status {
    changed = false;
    auto results = store.runs().apply_all(observations, now);
    if (!results) return results.status();
    for (const ApplyResult& r : *results) changed = changed || r.changed;
    return also ? also(store) : Status::ok();
  });
  if (outcome == RefreshOutcome::kFailed) return outcome;
  if (changed) {
    logger_->debug("hint refresh of {} {}: mirror changed", hint_kind_name(row.kind), row.id);
    return RefreshOutcome::kChanged;
  }
  return outcome;
}

RefreshOutcome Refresher::refresh_run(const PendingRefresh& row, std::int64_t began_ms) {
  const std::int64_t now = unix_seconds();
  auto run = fetch_run(client_, row.id, Source::kPoll, now);
  if (!run) {
    warn_failure(row, run.error().message);
    return RefreshOutcome::kFailed;
  }
  if (run->gone) {
    // A tombstone when the mirror holds it, else nothing (an id nobody
    // mirrored leaves no row).
    bool held = false;
    const RefreshOutcome outcome = finish(row, began_ms, RefreshOutcome::kDeleted, false, [&](Store& store) -> Status {
      auto current = store.runs().load(row.id);
      if (!current) return current.status();
      held = current->has_value();
      if (!held) return Status::ok();
      auto applied = store.runs().apply(run->observation, now);
      return applied ? Status::ok() : applied.status();
    });
    if (outcome == RefreshOutcome::kDeleted) {
      if (!held) return RefreshOutcome::kIgnored;
      logger_->info("run {}: get_run says it does not exist; marked deleted (TestRail webhook "
                    "hint)",
                    row.id);
    }
    return outcome;
  }
  if (!run->project_id || project(*run->project_id) == nullptr) {
    logger_->debug("hint refresh of run {}: project {} is not mirrored; ignored", row.id,
                   run->project_id.value_or(0));
    return finish(row, began_ms, RefreshOutcome::kIgnored, true);
  }
  return apply(row, began_ms, {std::move(run->observation)});
}

RefreshOutcome Refresher::refresh_plan(const PendingRefresh& row, std::int64_t began_ms) {
  auto plan = fetch_plan(client_, row.id, Source::kPoll);
  if (!plan) {
    warn_failure(row, plan.error().message);
    return RefreshOutcome::kFailed;
  }
  if (plan->gone) {
    // Its runs went with it: each is refreshed, and so marked deleted.
    std::int64_t queued = 0;
    const std::int64_t at_ms = clock_();
    const RefreshOutcome outcome = finish(row, began_ms, RefreshOutcome::kDeleted, false, [&](Store& store) -> Status {
      auto n = store.hints().add_runs_of_plan(row.id, at_ms);
      if (!n) return n.status();
      queued = n.value();
      return Status::ok();
    });
    if (outcome == RefreshOutcome::kDeleted) {
      logger_->info("plan {}: get_plan says it does not exist; refreshing its {} mirrored runs",
                    row.id, queued);
      if (queued == 0) return RefreshOutcome::kIgnored;
    }
    return outcome;
  }
  for (const Observation& run : plan->runs) {
    const std::optional<std::int64_t> project_id = project_of(run);
    if (!project_id || project(*project_id) == nullptr) {
      logger_->debug("hint refresh of plan {}: project {} is not mirrored; ignored", row.id,
                     project_id.value_or(0));
      return finish(row, began_ms, RefreshOutcome::kIgnored, true);
    }
  }
  // Runs the mirror holds in this plan that its entries no longer list are
  // refreshed one by one (SPEC §6 rule 4: plan runs are judged by the plan).
  std::vector<std::int64_t> listed;
  for (const Observation& o : plan->runs) listed.push_back(o.run_id);
  const std::int64_t at_ms = clock_();
  return apply(row, began_ms, plan->runs, [&](Store& store) -> Status {
    auto n = store.hints().add_runs_of_plan(row.id, at_ms, listed);
    if (n && n.value() > 0) {
      logger_->debug("plan {} no longer lists {} mirrored runs; refreshing them", row.id, n.value());
    }
    return n.status();
  });
}

RefreshOutcome Refresher::refresh_project(const PendingRefresh& row, std::int64_t began_ms) {
  const ProjectConfig* p = project(row.id);
  if (p == nullptr) return finish(row, began_ms, RefreshOutcome::kIgnored, true);
  const CycleOutcome out = project_cycle_.run(*p, PollKind::kActive);
  if (out.error) {
    warn_failure(row, *out.error);
    return RefreshOutcome::kFailed;
  }
  return finish(row, began_ms, out.stats.runs_changed > 0 ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false);
}

}  // namespace runsync
