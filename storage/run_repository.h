// The `runs` table and its change log, `run_changes`: every read and write
// of a run's row, and the Reconciler's decisions turned into SQL. A run's
// row and its change-log entry are written together; a change-log row's
// `seq` is the run's new `change_seq`.
//
// Ownership: made by Store for its connection; does not own it.
// Thread safety: none; the Store's one user (the writer thread).
// Errors: SQLite exceptions never escape; each call returns a Status. A
// failed write leaves the transaction open for the caller to roll back (to
// its savepoint). Every write must run inside the Store's transaction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/poll_plan.h"
#include "core/reconciler.h"
#include "core/status.h"
#include "storage/change_numbers.h"

namespace SQLite {
class Database;
}

namespace runsync {

// What applying one observation did.
struct ApplyResult {
  Decision::Outcome outcome = Decision::Outcome::kStale;
  bool created = false;
  bool changed = false;  // a run_changes row was written
  bool written = false;  // the runs row was written
};

class RunRepository {
 public:
  // Prepares the statements it always needs; throws SQLite::Exception when
  // it cannot (Store::open turns that into its error). Change-log numbers
  // follow `clock`'s wall time (change_numbers.h); `clock` must outlive it.
  RunRepository(SQLite::Database& db, const Clock& clock);
  ~RunRepository();
  RunRepository(const RunRepository&) = delete;
  RunRepository& operator=(const RunRepository&) = delete;

  // The stored row, or nullopt.
  StatusOr<std::optional<RunRecord>> load(std::int64_t run_id);

  // Applies one observation through the Reconciler and writes what it
  // decides (row, change log).
  StatusOr<ApplyResult> apply(const Observation& obs, std::int64_t now);

  // apply() for each of `observations`, in order, with the same outcome (an
  // observation sees what the ones before it wrote, also for the same run),
  // but the stored rows are read a few hundred per query and new runs are
  // inserted several per statement. Returns one ApplyResult per
  // observation, in order. On error nothing is rolled back here: the caller
  // rolls back (to its savepoint) what the batch wrote.
  StatusOr<std::vector<ApplyResult>> apply_all(std::span<const Observation> observations,
                                               std::int64_t now);

  // Writes what `decision` says, if anything; `decision` was made by
  // Reconciler::apply on `current`, the row load() returned, and its `next`
  // row is taken. For a caller that must decide before it writes (the
  // webhook journal records the outcome first).
  StatusOr<ApplyResult> write(const std::optional<RunRecord>& current, Decision& decision,
                              Source source, std::int64_t now);

  // The non-deleted and deleted runs of a project: those with this
  // project_id, and those only known by a webhook's project_code. Their
  // `polled` only `with_polled` (an active cycle needs it, a full one does
  // not): without it the runs with this project_id come from the
  // (project_id, state) index alone, not from a read of every row.
  StatusOr<std::vector<KnownRun>> known_runs(std::int64_t project_id,
                                             const std::string& project_code, bool with_polled);

  // Forgets the rows it remembers from its own writes (which spare the
  // next event of a run in flight its SELECT): they may no longer be what
  // is stored after a rollback, or when another connection wrote.
  void forget_cached_rows();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace runsync
