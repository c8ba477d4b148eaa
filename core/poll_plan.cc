#include "core/poll_plan.h"

#include <algorithm>

namespace runsync {

const char* poll_kind_name(PollKind kind) { return kind == PollKind::kFull ? "full" : "active"; }

std::chrono::seconds poll_stale_after(std::chrono::milliseconds poll_interval) {
  return std::chrono::duration_cast<std::chrono::seconds>(3 * poll_interval) +
         std::chrono::minutes(1);
}

std::optional<std::string> poll_problem(std::int64_t project_id, const PollRecord& record,
                                        std::int64_t now, std::chrono::milliseconds poll_interval) {
  const std::string project = "project " + std::to_string(project_id);
  if (!record.polled) return project + " has never been polled";
  if (record.last_error) return project + " last poll failed: " + *record.last_error;
  if (!record.last_success_at) return project + " has never been polled successfully";
  const std::int64_t stale_after = poll_stale_after(poll_interval).count();
  if (now - *record.last_success_at > stale_after) {
    return project + " has not been polled successfully for over " + std::to_string(stale_after) +
           "s";
  }
  return std::nullopt;
}

std::vector<std::int64_t> runs_to_refresh(const std::vector<KnownRun>& known,
                                          const std::unordered_set<std::int64_t>& listed,
                                          PollKind kind) {
  std::vector<std::int64_t> out;
  for (const KnownRun& run : known) {
    if (run.state == RunState::kDeleted || listed.count(run.run_id)) continue;
    if (kind == PollKind::kFull || run.state == RunState::kActive || !run.polled) {
      out.push_back(run.run_id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace runsync
