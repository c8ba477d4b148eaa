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

// One refresh_due pass: what is due, its plan, and what the pass's
// requests showed so far.
struct Refresher::Pass {
  // What a request of this pass showed of a run or plan: when the request
  // began and whether the mirror changed.
  struct Shown {
    std::int64_t began_ms;
    bool changed;
  };

  Clock::TimePoint now;                  // when the pass began
  std::optional<Clock::TimePoint> next;  // when to pass again if nothing is refreshed
  std::map<Key, PendingRefresh> due;     // the rows due now
  RefreshWaiting waiting;                // what the mirror knows of them
  RefreshPlan plan;
  std::map<std::int64_t, Shown> shown_runs;
  std::map<std::int64_t, Shown> shown_plans;
  std::set<std::int64_t> deferred;  // listings whose window or pace is not over
  bool every_listed = true;         // every configured project's listing ran and succeeded
  std::int64_t every_began_ms = 0;
  bool every_changed = false;
  bool refreshed = false;

  void come_back_at(Clock::TimePoint t) { next = next ? std::min(*next, t) : t; }
  // Whether `key`'s window is still open; if so, the pass comes back when it ends.
  bool window_open(const std::map<Key, Clock::TimePoint>& not_before, const Key& key) {
    const auto it = not_before.find(key);
    if (it == not_before.end() || it->second <= now) return false;
    come_back_at(it->second);
    return true;
  }
};

std::optional<Clock::TimePoint> Refresher::refresh_due() {
  Pass pass;
  if (!plan_pass(pass)) return pass.next;
  run_listings(pass);
  settle_projects(pass);
  // Then each lookup, unless a request of this pass showed its id.
  serve_lookups(pass, HintKind::kPlan, pass.plan.plans);
  serve_lookups(pass, HintKind::kRun, pass.plan.runs);
  serve_lookups(pass, HintKind::kPlan, pass.plan.unknown_plans);
  serve_lookups(pass, HintKind::kRun, pass.plan.unknown_runs);
  if (pass.refreshed) return clock_.now();
  return pass.next;
}

Clock::TimePoint Refresher::retry_after_read_error(const Status& error, Clock::TimePoint now) {
  if (auto note = warnings_.admit("read")) {
    logger_->error("hint refresher: cannot read pending refreshes: {}; retrying in {}{}",
                   error.message(), render_duration(options_.retry_interval), *note);
  }
  return now + options_.retry_interval;
}

bool Refresher::plan_pass(Pass& pass) {
  std::vector<PendingRefresh> rows;
  Status read = writer_.run([&](Store& store) -> Status {
    // The rows still waiting for a window are skipped: read past them.
    auto oldest =
        store.hints().oldest(options_.batch + static_cast<std::int64_t>(not_before_.size()));
    if (!oldest) return oldest.status();
    rows = std::move(oldest).value();
    return Status::ok();
  });
  pass.now = clock_.now();
  if (!read.is_ok()) {
    pass.next = retry_after_read_error(read, pass.now);
    return false;
  }
  std::erase_if(not_before_, [&](const auto& entry) { return entry.second <= pass.now; });
  for (const PendingRefresh& row : rows) {
    if (pass.window_open(not_before_, {row.kind, row.id})) continue;
    pass.due.emplace(Key{row.kind, row.id}, row);
    switch (row.kind) {
      case HintKind::kRun:
        pass.waiting.runs.push_back(row.id);
        break;
      case HintKind::kPlan:
        pass.waiting.plans.push_back(row.id);
        break;
      case HintKind::kProject:
        if (row.id == kEveryProject) {
          pass.waiting.every_project = true;
        } else {
          pass.waiting.projects.push_back(row.id);
        }
        break;
    }
  }
  if (pass.due.empty()) return false;
  for (const ProjectConfig& p : options_.projects) pass.waiting.listings[p.id] = {};
  Status described =
      writer_.run([&](Store& store) { return store.hints().describe(pass.waiting); });
  if (!described.is_ok()) {
    pass.next = retry_after_read_error(described, pass.now);
    return false;
  }
  pass.plan = plan_refreshes(pass.waiting);
  return true;
}

void Refresher::settle(const PendingRefresh& row, Clock::TimePoint started,
                       RefreshOutcome outcome) {
  const Key key{row.kind, row.id};
  refreshes(metrics_, row.kind, outcome).inc();
  if (outcome == RefreshOutcome::kFailed) {
    not_before_[key] = started + retry_delay(++failures_[key]);
  } else {
    failures_.erase(key);
    not_before_[key] = started + options_.min_refresh_interval;
  }
}

void Refresher::run_listings(Pass& pass) {
  pass.every_began_ms = clock_.unix_ms();
  for (std::int64_t project_id : pass.plan.listings) {
    if (stop_) break;
    bool later = pass.window_open(not_before_, {HintKind::kProject, project_id});
    if (!later) {
      if (const auto paced_until = paced()) {
        pass.come_back_at(*paced_until);
        later = true;
      }
    }
    if (later) {
      pass.deferred.insert(project_id);
      pass.every_listed = false;
      continue;
    }
    list_project(pass, project_id);
  }
}

void Refresher::list_project(Pass& pass, std::int64_t project_id) {
  const Key key{HintKind::kProject, project_id};
  const auto started = clock_.now();
  const std::int64_t began_ms = clock_.unix_ms();
  const CycleOutcome out = project_cycle_.run(*project(project_id), PollKind::kActive);
  spend(std::max<std::int64_t>(1, out.stats.requests));
  pass.refreshed = true;
  const auto row = pass.due.find(key);
  if (out.error) {
    pass.every_listed = false;
    if (row != pass.due.end()) {
      warn_failure(row->second, *out.error);
      settle(row->second, started, RefreshOutcome::kFailed);
    } else {
      not_before_[key] = started + options_.min_refresh_interval;
    }
    return;
  }
  const bool changed = out.stats.runs_changed > 0;
  pass.every_changed = pass.every_changed || changed;
  for (std::int64_t id : out.covered_runs) pass.shown_runs[id] = {began_ms, changed};
  for (std::int64_t id : out.covered_plans) pass.shown_plans[id] = {began_ms, changed};
  if (row != pass.due.end()) {
    settle(row->second, started,
           finish(row->second, began_ms,
                  changed ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false));
  } else {
    not_before_[key] = started + options_.min_refresh_interval;
  }
  std::int64_t served = 0;
  for (const auto& [k, r] : pass.due) {
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

void Refresher::settle_projects(Pass& pass) {
  for (std::int64_t id : pass.plan.ignored_projects) {
    if (stop_) break;
    const auto row = pass.due.find({HintKind::kProject, id});
    if (row == pass.due.end()) continue;
    settle(row->second, clock_.now(),
           finish(row->second, clock_.unix_ms(), RefreshOutcome::kIgnored, true));
    pass.refreshed = true;
  }
  if (!pass.waiting.every_project || stop_) return;
  const auto row = pass.due.find({HintKind::kProject, kEveryProject});
  if (pass.every_listed) {
    settle(
        row->second, clock_.now(),
        finish(row->second, pass.every_began_ms,
               pass.every_changed ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false));
    pass.refreshed = true;
  } else if (pass.deferred.empty()) {
    settle(row->second, clock_.now(), RefreshOutcome::kFailed);
    pass.refreshed = true;
  }
}

void Refresher::serve_lookups(Pass& pass, HintKind kind, const std::vector<Lookup>& lookups) {
  auto& shown = kind == HintKind::kRun ? pass.shown_runs : pass.shown_plans;
  for (const Lookup& lookup : lookups) {
    if (stop_) return;
    const PendingRefresh& row = pass.due.at({kind, lookup.id});
    const auto started = clock_.now();
    if (const auto it = shown.find(lookup.id); it != shown.end()) {
      const RefreshOutcome outcome =
          finish(row, it->second.began_ms,
                 it->second.changed ? RefreshOutcome::kChanged : RefreshOutcome::kUnchanged, false);
      settle(row, started, outcome);
      pass.refreshed = true;
      continue;
    }
    if (lookup.listed_by && pass.deferred.count(*lookup.listed_by)) {
      pass.window_open(not_before_, {HintKind::kProject, *lookup.listed_by});
      continue;
    }
    if (const auto later = paced()) {
      pass.come_back_at(*later);
      return;
    }
    spend(1);
    const std::int64_t began_ms = clock_.unix_ms();
    std::vector<std::int64_t> plan_runs;
    const RefreshOutcome outcome = kind == HintKind::kRun ? refresh_run(row, began_ms)
                                                          : refresh_plan(row, began_ms, plan_runs);
    for (std::int64_t id : plan_runs) {
      pass.shown_runs[id] = {began_ms, outcome == RefreshOutcome::kChanged};
    }
    settle(row, started, outcome);
    pass.refreshed = true;
  }
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
