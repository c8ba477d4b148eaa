#include "daemon/testrail/refresher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "core/refresh_plan.h"
#include "core/testrail_api.h"

namespace runsync {
namespace {

Counter& refreshes(Metrics& metrics, HintKind kind, RefreshOutcome outcome) {
  return metrics.counter(
      "runsync_hint_refreshes_total",
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

Refresher::Refresher(RefresherOptions options, TestRailClient& client, ProjectCycle& project_cycle,
                     Writer& writer, Metrics& metrics, Logger logger, const Clock& clock)
    : options_(std::move(options)),
      client_(client),
      project_cycle_(project_cycle),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(clock),
      latency_(metrics.histogram("runsync_hint_to_mirror_seconds",
                                 "Time from a TestRail webhook hint to the refresh that served it",
                                 {}, {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800})),
      warnings_(clock) {
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
      wake_.wait_for(lock, clock_.until(*next), woken);
    } else {
      wake_.wait(lock, woken);
    }
    notified_ = false;
  }
}

std::optional<Clock::TimePoint> Refresher::refresh_due() {
  std::vector<PendingRefresh> rows;
  Status read = writer_.run([&](Store& store) -> Status {
    // The rows still waiting for a window are skipped: read past them.
    auto oldest =
        store.hints().oldest(options_.batch + static_cast<std::int64_t>(not_before_.size()));
    if (!oldest) return oldest.status();
    rows = std::move(oldest).value();
    return Status::ok();
  });
  const auto now = clock_.now();
  if (!read.is_ok()) {
    if (auto note = warnings_.admit("read")) {
      logger_->error("hint refresher: cannot read pending refreshes: {}; retrying in {}{}",
                     read.message(), render_duration(options_.retry_interval), *note);
    }
    return now + options_.retry_interval;
  }
  std::erase_if(not_before_, [&](const auto& entry) { return entry.second <= now; });
  std::optional<Clock::TimePoint> next;
  auto wait_for = [&](const Key& key) {
    const auto it = not_before_.find(key);
    if (it == not_before_.end() || it->second <= now) return false;
    next = next ? std::min(*next, it->second) : it->second;
    return true;
  };

  // The rows due now, and what the mirror knows of them.
  std::map<Key, PendingRefresh> due;
  RefreshWaiting waiting;
  for (const PendingRefresh& row : rows) {
    if (wait_for({row.kind, row.id})) continue;
    due.emplace(Key{row.kind, row.id}, row);
    switch (row.kind) {
      case HintKind::kRun:
        waiting.runs.push_back(row.id);
        break;
      case HintKind::kPlan:
        waiting.plans.push_back(row.id);
        break;
      case HintKind::kProject:
        if (row.id == kEveryProject) {
          waiting.every_project = true;
        } else {
          waiting.projects.push_back(row.id);
        }
        break;
    }
  }
  if (due.empty()) return next;
  for (const ProjectConfig& p : options_.projects) waiting.listings[p.id] = {};
  Status described = writer_.run([&](Store& store) { return store.hints().describe(waiting); });
  if (!described.is_ok()) {
    if (auto note = warnings_.admit("read")) {
      logger_->error("hint refresher: cannot read pending refreshes: {}; retrying in {}{}",
                     described.message(), render_duration(options_.retry_interval), *note);
    }
    return now + options_.retry_interval;
  }
  const RefreshPlan plan = plan_refreshes(waiting);

  // Counts `outcome` for `row` and opens its next window.
  auto settle = [&](const PendingRefresh& row, Clock::TimePoint started, RefreshOutcome outcome) {
    const Key key{row.kind, row.id};
    refreshes(metrics_, row.kind, outcome).inc();
    if (outcome == RefreshOutcome::kFailed) {
      not_before_[key] = started + retry_delay(++failures_[key]);
    } else {
      failures_.erase(key);
      not_before_[key] = started + options_.min_refresh_interval;
    }
  };
  bool refreshed = false;

  // What this pass's requests showed: a run or plan they show needs no
  // request of its own. Each id maps to when the request that showed it
  // began and whether the mirror changed.
  struct Shown {
    std::int64_t began_ms;
    bool changed;
  };
  std::map<std::int64_t, Shown> shown_runs;
  std::map<std::int64_t, Shown> shown_plans;
  std::set<std::int64_t> deferred;  // listings whose window is not over
  bool every_listed = true;
  std::int64_t every_began_ms = clock_.unix_ms();
  bool every_changed = false;
  for (std::int64_t project_id : plan.listings) {
    if (stop_) break;
    const ProjectConfig* p = project(project_id);
    const Key key{HintKind::kProject, project_id};
    if (wait_for(key)) {
      deferred.insert(project_id);
      every_listed = false;
      continue;
    }
    if (const auto later = paced()) {
      next = next ? std::min(*next, *later) : *later;
      deferred.insert(project_id);
      every_listed = false;
      continue;
    }
    const auto started = clock_.now();
    const std::int64_t began_ms = clock_.unix_ms();
    const CycleOutcome out = project_cycle_.run(*p, PollKind::kActive);
    spend(std::max<std::int64_t>(1, out.stats.requests));
    refreshed = true;
    const auto row = due.find(key);
    if (out.error) {
      every_listed = false;
      if (row != due.end()) {
        warn_failure(row->second, *out.error);
        settle(row->second, started, RefreshOutcome::kFailed);
      } else {
        not_before_[key] = started + options_.min_refresh_interval;
      }
      continue;
    }
    const bool changed = out.stats.runs_changed > 0;
    every_changed = every_changed || changed;
    for (std::int64_t id : out.covered_runs) shown_runs[id] = {began_ms, changed};
    for (std::int64_t id : out.covered_plans) shown_plans[id] = {began_ms, changed};
    if (row != due.end()) {
      settle(row->second, started,
             finish(row->second, began_ms,
                    changed ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false));
    } else {
      not_before_[key] = started + options_.min_refresh_interval;
    }
    std::int64_t served = 0;
    for (const auto& [k, r] : due) {
      if ((k.first == HintKind::kRun && out.covered_runs.count(k.second)) ||
          (k.first == HintKind::kPlan && out.covered_plans.count(k.second))) {
        ++served;
      }
    }
    if (served > 0) {
      logger_->debug(
          "hint refresher: one active listing of project {} ({} requests) served {} "
          "waiting runs and plans",
          project_id, out.stats.requests, served);
    }
  }
  for (std::int64_t id : plan.ignored_projects) {
    if (stop_) break;
    const auto row = due.find({HintKind::kProject, id});
    if (row == due.end()) continue;
    settle(row->second, clock_.now(),
           finish(row->second, clock_.unix_ms(), RefreshOutcome::kIgnored, true));
    refreshed = true;
  }
  if (waiting.every_project && !stop_) {
    const auto row = due.find({HintKind::kProject, kEveryProject});
    if (every_listed) {
      settle(row->second, clock_.now(),
             finish(row->second, every_began_ms,
                    every_changed ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false));
      refreshed = true;
    } else if (deferred.empty()) {
      settle(row->second, clock_.now(), RefreshOutcome::kFailed);
      refreshed = true;
    }
  }

  // Then each lookup, unless a request of this pass showed its id.
  auto serve = [&](HintKind kind, const std::vector<Lookup>& lookups) {
    auto& shown = kind == HintKind::kRun ? shown_runs : shown_plans;
    for (const Lookup& lookup : lookups) {
      if (stop_) return;
      const PendingRefresh& row = due.at({kind, lookup.id});
      const auto started = clock_.now();
      if (const auto it = shown.find(lookup.id); it != shown.end()) {
        const RefreshOutcome outcome = finish(
            row, it->second.began_ms,
            it->second.changed ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false);
        settle(row, started, outcome);
        refreshed = true;
        continue;
      }
      if (lookup.listed_by && deferred.count(*lookup.listed_by)) {
        wait_for({HintKind::kProject, *lookup.listed_by});
        continue;
      }
      if (const auto later = paced()) {
        next = next ? std::min(*next, *later) : *later;
        return;
      }
      spend(1);
      const std::int64_t began_ms = clock_.unix_ms();
      std::vector<std::int64_t> plan_runs;
      const RefreshOutcome outcome = kind == HintKind::kRun
                                         ? refresh_run(row, began_ms)
                                         : refresh_plan(row, began_ms, plan_runs);
      for (std::int64_t id : plan_runs) {
        shown_runs[id] = {began_ms, outcome == RefreshOutcome::kChanged};
      }
      settle(row, started, outcome);
      refreshed = true;
    }
  };
  serve(HintKind::kPlan, plan.plans);
  serve(HintKind::kRun, plan.runs);
  serve(HintKind::kPlan, plan.unknown_plans);
  serve(HintKind::kRun, plan.unknown_runs);
  if (refreshed) return clock_.now();
  return next;
}

std::optional<Clock::TimePoint> Refresher::paced() {
  if (options_.max_requests_per_minute == 0) return std::nullopt;
  const double per_second = options_.max_requests_per_minute * 0.75 / 60.0;
  const double burst = options_.max_requests_per_minute / 12.0;
  const auto now = clock_.now();
  if (!refilled_) {
    allowance_ = burst;
  } else {
    allowance_ = std::min(
        burst, allowance_ + per_second * std::chrono::duration<double>(now - *refilled_).count());
  }
  refilled_ = now;
  if (allowance_ >= 1) return std::nullopt;
  return now + std::chrono::duration_cast<Clock::Duration>(
                   std::chrono::duration<double>((1 - allowance_) / per_second));
}

void Refresher::spend(std::int64_t requests) { allowance_ -= static_cast<double>(requests); }

std::chrono::milliseconds Refresher::retry_delay(int failures) const {
  const auto longest =
      std::max<std::chrono::milliseconds>(options_.max_retry_interval, options_.retry_interval);
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
                  hint_kind_name(row.kind), row.id, message, render_duration(retry_delay(failures)),
                  *note);
  }
}

void Refresher::observe_latency(const PendingRefresh& row, bool gone) {
  if (!gone) return;  // a newer hint came meanwhile: its own refresh will tell
  latency_.observe(
      static_cast<double>(std::max<std::int64_t>(0, clock_.unix_ms() - row.first_hint_at_ms)) /
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
  const std::int64_t now = clock_.unix_seconds();
  const RefreshOutcome outcome =
      finish(row, began_ms, RefreshOutcome::kUnchanged, false, [&](Store& store) -> Status {
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
  const std::int64_t now = clock_.unix_seconds();
  auto run = fetch_run(client_, row.id, Source::kPoll, now);
  if (!run) {
    warn_failure(row, run.error().message);
    return RefreshOutcome::kFailed;
  }
  if (run->gone) {
    // A tombstone when the mirror holds it, else nothing (an id nobody
    // mirrored leaves no row).
    bool held = false;
    const RefreshOutcome outcome =
        finish(row, began_ms, RefreshOutcome::kDeleted, false, [&](Store& store) -> Status {
          auto current = store.runs().load(row.id);
          if (!current) return current.status();
          held = current->has_value();
          if (!held) return Status::ok();
          auto applied = store.runs().apply(run->observation, now);
          return applied ? Status::ok() : applied.status();
        });
    if (outcome == RefreshOutcome::kDeleted) {
      if (!held) return RefreshOutcome::kIgnored;
      logger_->info(
          "run {}: get_run says it does not exist; marked deleted (TestRail webhook "
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

RefreshOutcome Refresher::refresh_plan(const PendingRefresh& row, std::int64_t began_ms,
                                       std::vector<std::int64_t>& runs) {
  auto plan = fetch_plan(client_, row.id, Source::kPoll);
  if (!plan) {
    warn_failure(row, plan.error().message);
    return RefreshOutcome::kFailed;
  }
  if (plan->gone) {
    // Its runs went with it: each is refreshed, and so marked deleted.
    std::int64_t queued = 0;
    const std::int64_t at_ms = clock_.unix_ms();
    const RefreshOutcome outcome =
        finish(row, began_ms, RefreshOutcome::kDeleted, false, [&](Store& store) -> Status {
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
  const std::int64_t at_ms = clock_.unix_ms();
  const RefreshOutcome outcome = apply(row, began_ms, plan->runs, [&](Store& store) -> Status {
    auto n = store.hints().add_runs_of_plan(row.id, at_ms, listed);
    if (n && n.value() > 0) {
      logger_->debug("plan {} no longer lists {} mirrored runs; refreshing them", row.id,
                     n.value());
    }
    return n.status();
  });
  if (outcome != RefreshOutcome::kFailed) runs = std::move(listed);
  return outcome;
}

}  // namespace runsync
