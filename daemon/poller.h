// Polls the TestRail API for every configured project and feeds what it
// finds through the single writer (SPEC §5, §6 rules 4 and 6).
//
// A cycle lists runs (get_runs), then plans and their runs (get_plans,
// get_plan), applying each page as it arrives; when every listing was
// complete it refreshes, one get_run each, the known runs no listing
// covered — which is the only way polling marks a run deleted. A failed
// cycle is recorded as failed and deletes nothing.
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
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/poll_plan.h"
#include "core/testrail_api.h"
#include "daemon/config.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/testrail_client.h"
#include "storage/writer.h"

namespace runsync {

struct PollerOptions {
  std::vector<ProjectConfig> projects;
  std::chrono::milliseconds poll_interval{60'000};
  std::chrono::milliseconds full_sync_interval{3'600'000};
};

struct CycleOutcome {
  std::int64_t project_id = 0;
  PollKind kind = PollKind::kActive;
  PollCycleStats stats;
  std::optional<std::string> error;  // nullopt: the cycle succeeded
  // 401/403 (credentials or permissions), or an untrusted TLS certificate.
  bool config_error = false;
  bool tls_error = false;            // of config_error: the certificate
  bool stopped = false;              // stop() cut it off; its row stays unfinished
  double seconds = 0;
};

// Counts API requests by status (runsync_api_requests_total), their
// latency, waits and failures, and logs retries and failures.
ApiObserver make_api_observer(Metrics& metrics, Logger logger);

// When a poll answer was observed (SPEC §6 rule 2): the server's Date, but
// never later than the local time it arrived; that time without a Date.
std::int64_t observation_time(const std::optional<std::int64_t>& server_date,
                              std::int64_t arrived_at);

class Poller {
 public:
  using UnixClock = std::function<std::int64_t()>;

  // `client`, `writer` and `metrics` must outlive the poller.
  Poller(PollerOptions options, TestRailClient& client, Writer& writer, Metrics& metrics,
         Logger logger, UnixClock clock);

  // One cycle for one project, recorded in poll_cycles and logged.
  CycleOutcome run_cycle(const ProjectConfig& project, PollKind kind);

  // Polls on schedule until stop(): a full cycle first, then active cycles
  // every poll_interval and full ones every full_sync_interval. After a
  // configuration error (401/403) a project is retried slowly.
  void run();
  void stop();

  // Why polling is unhealthy, or nullopt: every project's last cycle
  // succeeded, within three poll intervals (plus a minute). For the
  // service's STATUS line; /readyz does not depend on it (SPEC §4).
  std::optional<std::string> not_ready_reason() const;

 private:
  struct ProjectState {
    std::optional<std::chrono::steady_clock::time_point> last_success;
    std::optional<std::string> last_error;
  };

  // One page of a listing as list_pages needs it (see PageCursor::advance).
  struct ListedPage {
    bool bare = false;
    std::optional<std::string> next;
    std::vector<std::int64_t> ids;
  };
  // Applies one 2xx answer observed at `observed_at`; the page, or why the
  // listing cannot go on (the cycle's error message).
  using PageHandler =
      std::function<StatusOr<ListedPage>(const ApiResponse& response, std::int64_t observed_at)>;

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
  static void record_failure(CycleOutcome& out, std::string message, const ApiError* api);
  void record(const CycleOutcome& outcome);
  // How long a project waits after a configuration error (401/403).
  std::chrono::milliseconds config_retry_interval() const;
  Status apply_page(std::span<const Observation> observations, CycleOutcome& out);

  PollerOptions options_;
  TestRailClient& client_;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  UnixClock clock_;
  std::atomic<bool> stop_{false};
  bool scheduled_ = false;  // run() is polling on schedule (its thread only)
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::int64_t, ProjectState> state_;
};

}  // namespace runsync
