// Polls every configured project on schedule (SPEC §5): a full cycle
// first, then active cycles every poll_interval and full ones every
// full_sync_interval; after a configuration error (401/403) a project is
// retried slowly. Each cycle is a ProjectCycle.
//
// Thread safety: run() on its own thread; stop() and not_ready_reason()
// from any thread. run_cycle() is for one-shot use (`runsync sync`), not
// concurrently with run().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/poll_plan.h"
#include "core/project.h"
#include "daemon/testrail/project_cycle.h"

namespace runsync {

struct PollerOptions {
  std::vector<ProjectConfig> projects;
  std::chrono::milliseconds poll_interval{60'000};
  std::chrono::milliseconds full_sync_interval{3'600'000};
};

class Poller {
 public:
  // `client`, `writer`, `metrics` and `clock` must outlive the poller.
  Poller(PollerOptions options, TestRailClient& client, Writer& writer, Metrics& metrics,
         Logger logger, const Clock& clock);

  // One cycle for one project (see ProjectCycle::run).
  CycleOutcome run_cycle(const ProjectConfig& project, PollKind kind);

  // Polls on schedule until stop().
  void run();
  void stop();

  // Why polling is unhealthy (poll_problem of the first project that is),
  // or nullopt. For the service's STATUS line; /readyz does not depend on
  // it (SPEC §4).
  std::optional<std::string> not_ready_reason() const;

 private:
  // How long a project waits after a configuration error (401/403).
  std::chrono::milliseconds config_retry_interval() const;
  // Runs one cycle on schedule and keeps its record; returns the outcome.
  CycleOutcome scheduled_cycle(const ProjectConfig& project, PollKind kind);

  PollerOptions options_;
  ProjectCycle cycle_;
  const Clock& clock_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::int64_t, PollRecord> records_;  // guarded by mu_
};

}  // namespace runsync
