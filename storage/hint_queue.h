// The `pending_refreshes` table (SPEC §4a): what TestRail webhook hints
// asked to refresh, coalesced to one row per run, plan or project. A hint is
// stored before it is answered, so a restart loses none; a row goes once a
// refresh that began after its newest hint has been applied.
//
// Ownership: made by Store for its connection; does not own it.
// Thread safety: none; the Store's one user (the writer thread).
// Errors: SQLite exceptions never escape; each call returns a Status. Every
// write must run inside the Store's transaction.
#pragma once

#include <cstdint>
#include <vector>

#include "core/refresh_plan.h"
#include "core/status.h"
#include "core/testrail_hint.h"

namespace SQLite {
class Database;
}

namespace runsync {

// The project row that stands for every configured project: what unknown
// ids collapse into once kMaxUnknownRows of them wait.
inline constexpr std::int64_t kEveryProject = 0;
// Rows for ids the mirror does not know that may wait at once.
inline constexpr std::int64_t kMaxUnknownRows = 256;

struct PendingRefresh {
  HintKind kind = HintKind::kRun;
  std::int64_t id = 0;
  std::int64_t first_hint_at_ms = 0;
  std::int64_t last_hint_at_ms = 0;
  std::int64_t hints = 0;
};

class HintQueue {
 public:
  explicit HintQueue(SQLite::Database& db) : db_(db) {}
  HintQueue(const HintQueue&) = delete;
  HintQueue& operator=(const HintQueue&) = delete;

  // Records a hint received at `at_ms`: a new row, or one more hint on the
  // row already pending for this kind and id. The set stays bounded: a
  // hint for an active run, when more of its project's active runs would
  // wait than one listing of the project costs (listing_cost), folds them
  // all into the project's row; a hint for an id the mirror does not know,
  // when kMaxUnknownRows such rows wait, goes to the kEveryProject row.
  Status add(HintKind kind, std::int64_t id, std::int64_t at_ms);
  // Fills in what the mirror knows of `waiting`'s runs and plans and the
  // listing size of each project already in `waiting.listings`.
  Status describe(RefreshWaiting& waiting);
  // A pending run row for every run of plan `plan_id` the mirror holds and
  // has not marked deleted, except those in `listed`: for a plan that no
  // longer exists, or runs its plan no longer lists. Returns how many runs
  // that names.
  StatusOr<std::int64_t> add_runs_of_plan(std::int64_t plan_id, std::int64_t at_ms,
                                          const std::vector<std::int64_t>& listed = {});
  // Up to `limit` pending rows, the longest waiting first.
  StatusOr<std::vector<PendingRefresh>> oldest(std::int64_t limit);
  // A refresh of `taken` (a row oldest() returned) that began at
  // `began_at_ms` has been applied: the row goes when no hint came since it
  // was read, i.e. its count is still taken.hints (returns true); otherwise
  // it stays, owing a refresh for the hints that came since.
  StatusOr<bool> served(const PendingRefresh& taken, std::int64_t began_at_ms);
  // Drops the row without a refresh (a hint for something runsync does not
  // mirror).
  Status drop(HintKind kind, std::int64_t id);
  StatusOr<std::int64_t> count();

 private:
  SQLite::Database& db_;
};

}  // namespace runsync
