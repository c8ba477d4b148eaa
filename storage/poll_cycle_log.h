// The `poll_cycles` table: one row per project per poll cycle, started when
// the cycle starts and completed when it ends (a row never completed is a
// cycle that was cut off).
//
// Ownership: made by Store for its connection; does not own it.
// Thread safety: none; the Store's one user (the writer thread).
// Errors: SQLite exceptions never escape; each call returns a Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/poll_plan.h"
#include "core/status.h"

namespace SQLite {
class Database;
}

namespace runsync {

// The counters of one poll cycle (a row of poll_cycles).
struct PollCycleStats {
  std::int64_t pages = 0;
  std::int64_t requests = 0;
  std::int64_t runs_seen = 0;
  std::int64_t runs_changed = 0;
  std::int64_t runs_deleted = 0;
};

class PollCycleLog {
 public:
  explicit PollCycleLog(SQLite::Database& db) : db_(db) {}
  PollCycleLog(const PollCycleLog&) = delete;
  PollCycleLog& operator=(const PollCycleLog&) = delete;

  // Starts a cycle's row; returns its id.
  StatusOr<std::int64_t> begin(std::int64_t project_id, PollKind kind, std::int64_t started_at);
  // Completes row `id`; `error` nullopt when the cycle succeeded.
  Status finish(std::int64_t id, const PollCycleStats& stats,
                const std::optional<std::string>& error, std::int64_t finished_at);

 private:
  SQLite::Database& db_;
};

}  // namespace runsync
