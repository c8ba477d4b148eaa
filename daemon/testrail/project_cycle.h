// One poll cycle of one project (SPEC §5, §6 rules 4 and 6), and the
// lookups of single runs and plans it shares with the refresher.
//
// A cycle lists runs (get_runs), then plans and their runs (get_plans,
// get_plan), applying each page through the single writer as it arrives;
// when every listing was complete it refreshes, one get_run each, the
// known runs no listing covered, which is the only way polling marks a run
// deleted. A failed cycle is recorded as failed and deletes nothing. Each
// cycle is recorded in poll_cycles, counted in the metrics and logged in
// one line, whoever ran it (the poller on schedule, `runsync sync`, or a
// project hint).
//
// Thread safety: run() on one thread at a time; stop() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/clock.h"
#include "core/poll_plan.h"
#include "core/project.h"
#include "core/testrail_api.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/testrail/testrail_client.h"
#include "storage/writer.h"

namespace runsync {

// How runsync_poll_cycles_total's outcome label counts a finished cycle.
enum class PollOutcome { kOk, kFailed, kConfigError };
inline constexpr PollOutcome kPollOutcomes[] = {PollOutcome::kOk, PollOutcome::kFailed,
                                                PollOutcome::kConfigError};
const char* poll_outcome_name(PollOutcome outcome);  // "ok", "failed", "config_error"

struct CycleOutcome {
  std::int64_t project_id = 0;
  PollKind kind = PollKind::kActive;
  PollCycleStats stats;
  std::optional<std::string> error;  // nullopt: the cycle succeeded
  // 401/403 (credentials or permissions), or an untrusted TLS certificate.
  bool config_error = false;
  bool tls_error = false;  // of config_error: the certificate
  bool stopped = false;    // stop() cut it off; its row stays unfinished
  double seconds = 0;
  // The runs the cycle observed (listed, or refreshed with get_run) and the
  // plans it fetched; complete only when the cycle succeeded.
  std::unordered_set<std::int64_t> covered_runs;
  std::unordered_set<std::int64_t> covered_plans;
};

// What get_run said of one run: the run as observed, or, when TestRail
// answers that it does not exist, its deletion (SPEC §6 rule 4).
struct FetchedRun {
  Observation observation;
  bool gone = false;
  std::optional<std::int64_t> project_id;  // as the API gave it; nullopt when gone
  int attempts = 1;
};
// get_run/{run_id} as an observation by `source`, made at the answer's
// observed_at, or at `now` for a run that is gone. kBadResponse when the
// run cannot be parsed; any other error as the client gave it. An error's
// message is one line naming the request and what went wrong.
ApiResult<FetchedRun> fetch_run(TestRailClient& client, std::int64_t run_id, Source source,
                                std::int64_t now);

// What get_plan said of one plan: its runs as observed, or that it is gone.
struct FetchedPlan {
  std::vector<Observation> runs;  // each with plan_id, plan_name and project_id when given
  bool gone = false;
  int attempts = 1;
};
// get_plan/{plan_id}, its runs observed by `source`. Errors as fetch_run's.
ApiResult<FetchedPlan> fetch_plan(TestRailClient& client, std::int64_t plan_id, Source source);

// Counts API requests by status (runsync_api_requests_total), their
// latency, waits and failures, and logs retries and failures.
ApiObserver make_api_observer(Metrics& metrics, Logger logger);

// When a scheduled cycle that failed is tried again, for its log line.
struct RetrySchedule {
  std::chrono::milliseconds after_failure;
  std::chrono::milliseconds after_config_error;
};

class ProjectCycle {
 public:
  // `client`, `writer`, `metrics` and `clock` must outlive the cycle.
  ProjectCycle(TestRailClient& client, Writer& writer, Metrics& metrics, Logger logger,
               const Clock& clock);

  // One cycle of `kind` for `project`, recorded, counted and logged. When
  // it fails and `retry` is given, the log line says when the next attempt
  // comes.
  CycleOutcome run(const ProjectConfig& project, PollKind kind,
                   std::optional<RetrySchedule> retry = std::nullopt);

  // Cuts a cycle in flight short (its row stays unfinished) and every later
  // one; cancels the client's request in flight.
  void stop();

  // Declares the series every cycle counts, at 0, so alerts see them
  // before the first cycle.
  static void declare_metrics(Metrics& metrics, const ProjectConfig& project);

 private:
  // One page of a listing as list_pages needs it (see PageCursor::advance).
  struct ListedPage {
    bool bare = false;
    std::optional<std::string> next;
    std::vector<std::int64_t> ids;
  };
  // Applies one 2xx answer; the page, or why the listing cannot go on.
  using PageHandler = std::function<StatusOr<ListedPage>(const ApiResponse& response)>;

  // Fetches every page of the listing `base` (e.g. "get_runs/1&is_completed=0")
  // in turn and hands each to `take`; the first failure goes into `out`.
  void list_pages(const std::string& base, CycleOutcome& out, const PageHandler& take);
  // The three parts of a cycle; each records its first failure in `out`
  // and adds the runs it listed to `listed`.
  void list_runs(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                 std::unordered_set<std::int64_t>& listed);
  void poll_plans(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                  std::unordered_set<std::int64_t>& listed);
  void refresh_unlisted(const ProjectConfig& project, PollKind kind, CycleOutcome& out,
                        const std::unordered_set<std::int64_t>& listed);
  Status apply(std::span<const Observation> observations, CycleOutcome& out);
  void report(const CycleOutcome& out, const std::optional<RetrySchedule>& retry);

  TestRailClient& client_;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  const Clock& clock_;
  std::atomic<bool> stop_{false};
};

}  // namespace runsync
