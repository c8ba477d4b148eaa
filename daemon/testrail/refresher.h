// Serves the refreshes TestRail webhook hints asked for (SPEC §4a): takes
// pending rows oldest first and asks the API for the truth — get_run for a
// run, get_plan for a plan, the project's active cycle for a project —
// then applies what it finds through the same reconciler as polling. Each
// pass is planned by cost (plan_refreshes): a project's active listing
// serves its waiting runs when they would cost more get_run requests, and
// ids the mirror does not know are looked up last, unless a listing of the
// pass showed them. Its
// client shares the polling client's request budget and goes first when
// both wait (RequestPriority::kHint).
//
// A run, plan or project refreshed less than min_refresh_interval ago is
// refreshed once more when that window ends, however many hints came
// meanwhile. A run get_run says does not exist becomes a tombstone when
// the mirror holds it (SPEC §6 rule 4); a plan that no longer exists has
// its runs refreshed one by one, and so are the mirrored runs a plan no
// longer lists. A failed refresh stays pending and is retried after
// retry_interval, doubling for each further failure.
//
// Thread safety: run() on its own thread; notify() and stop() from any
// thread. refresh_due() is for tests, not concurrently with run().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/duration.h"
#include "core/project.h"
#include "core/refresh_plan.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/testrail/project_cycle.h"
#include "daemon/testrail/testrail_client.h"
#include "storage/hint_queue.h"
#include "storage/writer.h"

namespace runsync {

struct RefresherOptions {
  std::vector<ProjectConfig> projects;
  std::chrono::milliseconds min_refresh_interval{2'000};
  // After a failed refresh; doubled after each further failure of the same
  // row, up to max_retry_interval.
  std::chrono::milliseconds retry_interval{10'000};
  std::chrono::milliseconds max_retry_interval{600'000};
  std::int64_t batch = 256;  // pending rows read per pass
  // The instance's budget (0: none). The refresher spends at most three
  // quarters of it, paced (a burst of up to 5 s worth, then at that rate),
  // so that when hints come faster than get_run can follow, they wait and
  // gather into listings instead of spending the whole minute's budget at
  // once and stalling every request until the window frees.
  std::uint32_t max_requests_per_minute = 0;
};

// How a refresh ended; runsync_hint_refreshes_total counts each by name.
enum class RefreshOutcome { kChanged, kUnchanged, kDeleted, kIgnored, kFailed };
inline constexpr RefreshOutcome kRefreshOutcomes[] = {
    RefreshOutcome::kChanged, RefreshOutcome::kUnchanged, RefreshOutcome::kDeleted,
    RefreshOutcome::kIgnored, RefreshOutcome::kFailed};
// "changed", "unchanged", "deleted", "ignored", "failed".
const char* refresh_outcome_name(RefreshOutcome outcome);

class Refresher {
 public:
  // `client` must be a client of its own with RequestPriority::kHint;
  // `project_cycle` runs project hints' cycles with that client. Every
  // reference must outlive the refresher.
  Refresher(RefresherOptions options, TestRailClient& client, ProjectCycle& project_cycle,
            Writer& writer, Metrics& metrics, Logger logger, const Clock& clock);

  // Refreshes until stop(), waking on notify() and when a window ends.
  void run();
  // A hint was stored.
  void notify();
  // Ends run() and cancels the request in flight.
  void stop();

  // One pass: refreshes the pending rows that are due, as plan_refreshes
  // orders them, while the pace allows. Returns when to pass again: now
  // when it refreshed something (more may wait), the end of the earliest
  // window or pause it waits for, or nullopt when nothing is pending.
  std::optional<Clock::TimePoint> refresh_due();

 private:
  using Key = std::pair<HintKind, std::int64_t>;
  struct Pass;  // one refresh_due pass (refresher.cc)

  // The steps of refresh_due, in order. plan_pass reads the rows due and
  // plans them; false when the pass ends there (pass.next says when to
  // come back). run_listings runs the planned active listings (each by
  // list_project), settle_projects settles the project rows, and
  // serve_lookups looks up each run or plan no request of the pass showed.
  bool plan_pass(Pass& pass);
  void run_listings(Pass& pass);
  void list_project(Pass& pass, std::int64_t project_id);
  void settle_projects(Pass& pass);
  void serve_lookups(Pass& pass, HintKind kind, const std::vector<Lookup>& lookups);
  // Logs (rate-limited) that the pending rows cannot be read; returns when
  // to try again.
  Clock::TimePoint retry_after_read_error(const Status& error, Clock::TimePoint now);
  // Counts `outcome` for `row` and opens its next window.
  void settle(const PendingRefresh& row, Clock::TimePoint started, RefreshOutcome outcome);
  RefreshOutcome refresh_run(const PendingRefresh& row, std::int64_t began_ms);
  // Sets `runs` to the runs the plan lists when the refresh stored them.
  RefreshOutcome refresh_plan(const PendingRefresh& row, std::int64_t began_ms,
                              std::vector<std::int64_t>& runs);
  // Applies `observations`, then `also` when set, and marks `row` served by
  // a refresh begun at `began_ms`, in one transaction. Returns kChanged or
  // kUnchanged, or kFailed when it could not be stored.
  RefreshOutcome apply(const PendingRefresh& row, std::int64_t began_ms,
                       const std::vector<Observation>& observations,
                       const std::function<Status(Store&)>& also = {});
  // Marks `row` served (dropped when `drop`), in one transaction, plus
  // `also` when set. Returns `outcome`, or kFailed.
  RefreshOutcome finish(const PendingRefresh& row, std::int64_t began_ms, RefreshOutcome outcome,
                        bool drop, const std::function<Status(Store&)>& also = {});
  // The hint-to-mirror latency of `row`, when its refresh removed it (`gone`).
  void observe_latency(const PendingRefresh& row, bool gone);
  // How long a row waits after its `failures`-th failure in a row.
  std::chrono::milliseconds retry_delay(int failures) const;
  const ProjectConfig* project(std::int64_t id) const;
  void warn_failure(const PendingRefresh& row, const std::string& message);
  // Refills the request allowance up to now; returns when it reaches one
  // request, or nullopt when a request may be made now (always when unpaced).
  std::optional<Clock::TimePoint> paced();
  void spend(std::int64_t requests);

  const RefresherOptions options_;
  TestRailClient& client_;
  ProjectCycle& project_cycle_;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  const Clock& clock_;
  Histogram& latency_;
  LogRateLimiter warnings_;
  // When each kind/id may be refreshed next; entries past due are dropped.
  std::map<Key, Clock::TimePoint> not_before_;
  std::map<Key, int> failures_;  // failed refreshes in a row, per still-pending row
  double allowance_ = 0;         // requests the pace allows now; below 1: wait
  std::optional<Clock::TimePoint> refilled_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  bool notified_ = false;  // guarded by mu_
};

}  // namespace runsync
