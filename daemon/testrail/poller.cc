#include "daemon/testrail/poller.h"

#include <algorithm>

namespace runsync {

Poller::Poller(PollerOptions options, TestRailClient& client, Writer& writer, Metrics& metrics,
               Logger logger, const Clock& clock)
    : options_(std::move(options)),
      cycle_(client, writer, metrics, std::move(logger), clock),
      clock_(clock) {
  for (const auto& p : options_.projects) {
    records_[p.id];
    ProjectCycle::declare_metrics(metrics, p);
  }
}

CycleOutcome Poller::run_cycle(const ProjectConfig& project, PollKind kind) {
  return cycle_.run(project, kind);
}

std::chrono::milliseconds Poller::config_retry_interval() const {
  return std::clamp(options_.poll_interval * 5, std::chrono::milliseconds(std::chrono::minutes(1)),
                    std::chrono::milliseconds(std::chrono::minutes(15)));
}

CycleOutcome Poller::scheduled_cycle(const ProjectConfig& project, PollKind kind) {
  CycleOutcome out =
      cycle_.run(project, kind, RetrySchedule{options_.poll_interval, config_retry_interval()});
  if (out.stopped) return out;
  std::lock_guard lock(mu_);
  PollRecord& record = records_[project.id];
  record.polled = true;
  record.last_error = out.error;
  if (!out.error) record.last_success_at = clock_.unix_seconds();
  return out;
}

void Poller::run() {
  struct Due {
    Clock::TimePoint next;
    Clock::TimePoint next_full;
  };
  std::map<std::int64_t, Due> due;
  const auto start = clock_.now();
  for (const auto& p : options_.projects) due[p.id] = {start, start};
  const auto slow = config_retry_interval();
  while (!stop_) {
    for (const auto& p : options_.projects) {
      if (stop_) break;
      Due& d = due[p.id];
      const auto now = clock_.now();
      if (now < d.next) continue;
      const PollKind kind = now >= d.next_full ? PollKind::kFull : PollKind::kActive;
      const CycleOutcome out = scheduled_cycle(p, kind);
      const auto after = clock_.now();
      if (!out.error) {
        d.next = after + options_.poll_interval;
        if (kind == PollKind::kFull) d.next_full = after + options_.full_sync_interval;
      } else {
        d.next = after + (out.config_error ? slow : options_.poll_interval);
      }
    }
    auto next = Clock::TimePoint::max();
    for (const auto& [id, d] : due) next = std::min(next, d.next);
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, clock_.until(next), [&] { return stop_.load(); });
  }
}

void Poller::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  cycle_.stop();
}

std::optional<std::string> Poller::not_ready_reason() const {
  const std::int64_t now = clock_.unix_seconds();
  std::lock_guard lock(mu_);
  for (const auto& [id, record] : records_) {
    if (auto problem = poll_problem(id, record, now, options_.poll_interval)) return problem;
  }
  return std::nullopt;
}

}  // namespace runsync
