// Rules of polling that do not depend on I/O: which runs a poll cycle must
// look at one by one (SPEC §5, §6 rule 4), and when a project's polling
// counts as stale. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/field.h"

namespace runsync {

enum class PollKind { kActive, kFull };
const char* poll_kind_name(PollKind kind);

// How long after its last successful cycle a project's polling is stale:
// three poll intervals, plus a minute for a cycle that takes that long.
// Used by `runsync status` and the service's STATUS line.
std::chrono::seconds poll_stale_after(std::chrono::milliseconds poll_interval);

// What is known of a project's polling, read from poll_cycles or kept by
// the poller as its cycles end.
struct PollRecord {
  bool polled = false;                          // some cycle of it ended
  std::optional<std::string> last_error;        // the last ended cycle failed, with this
  std::optional<std::int64_t> last_success_at;  // unix s of the last successful cycle
};

// Why a project's polling is unhealthy, or nullopt when it is not: never
// polled, its last cycle failed, never successful, or no success for over
// poll_stale_after(poll_interval) before `now` (unix s). The one rule for
// `runsync status` (its problems and exit code) and the service's STATUS
// line.
std::optional<std::string> poll_problem(std::int64_t project_id, const PollRecord& record,
                                        std::int64_t now, std::chrono::milliseconds poll_interval);

// What the mirror holds about a run, as far as polling cares.
struct KnownRun {
  std::int64_t run_id = 0;
  RunState state = RunState::kActive;
  // Some poll has observed it (false: only webhooks told us). Read only
  // when asked for (RunRepository::known_runs); a full cycle does not need it.
  bool polled = false;
};

// The runs to refresh with get_run after the cycle's listings all completed:
// - never deleted runs (tombstones stay);
// - a full cycle lists every run, so every other known run is refreshed —
//   get_run then either returns it or says it does not exist (→ deleted);
// - an active cycle lists active runs and the runs of active plans, so it
//   refreshes the known runs it did not list that are still active (they
//   ended or were deleted) or that no poll has seen yet (webhook-only).
// Sorted by run id.
std::vector<std::int64_t> runs_to_refresh(const std::vector<KnownRun>& known,
                                          const std::unordered_set<std::int64_t>& listed,
                                          PollKind kind);

}  // namespace runsync
