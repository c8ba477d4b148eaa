// Retention: deleting rows of the history tables (webhook_events,
// poll_cycles, run_changes) once they are older than a window, a small
// batch at a time so that no single transaction holds the writer long.
//
// A batch looks at the next `limit` rows by primary key after a cursor and
// deletes those older than the cutoff, a primary-key range delete. Some rows
// are always kept, whatever their age:
//   webhook_events  the newest row (seq must not start over);
//   run_changes     the newest row (runs.change_seq continues from it);
//   poll_cycles     each project's newest row and its newest successful
//                   row (`runsync status` and the metrics read them).
// The runs table, and so its tombstones, is never touched.
//
// Freed pages go to SQLite's free list and are reused by later inserts, so
// the file stops growing once deletes keep up with inserts.
//
// Thread safety: none; runs on the Store's one user (the writer thread),
// inside the transaction the caller opened.
// Errors: SQLite exceptions never escape; a failed batch returns an error
// and leaves the transaction for the caller to roll back.
#pragma once

#include <cstdint>
#include <limits>

#include "core/status.h"

namespace runsync {

class Store;

enum class HistoryTable { kWebhookEvents, kPollCycles, kRunChanges };
inline constexpr HistoryTable kHistoryTables[] = {
    HistoryTable::kWebhookEvents, HistoryTable::kPollCycles, HistoryTable::kRunChanges};
const char* history_table_name(HistoryTable table);  // "webhook_events", ...

// Most rows one batch looks at, and so deletes.
inline constexpr std::int64_t kMaxPruneBatch = 1000;

struct PruneBatch {
  std::int64_t deleted = 0;
  // The primary key of the last row looked at: the cursor for the next batch.
  std::int64_t last_key = std::numeric_limits<std::int64_t>::min();
  // Whether another batch may find more to delete: this one looked at a
  // full `limit` of rows and some of them were older than the cutoff. A
  // batch that finds only rows inside the window has reached the rows
  // written since, and a round can stop there.
  bool more = false;
};

// Deletes, among the `limit` rows of `table` with the smallest primary keys
// greater than `after`, those whose time (received_at, started_at,
// changed_at: unix seconds) is before `cutoff`, except the rows kept always
// (see above). `limit` is clamped to 1..kMaxPruneBatch.
StatusOr<PruneBatch> prune_batch(Store& store, HistoryTable table, std::int64_t cutoff,
                                 std::int64_t after = std::numeric_limits<std::int64_t>::min(),
                                 std::int64_t limit = kMaxPruneBatch);

}  // namespace runsync
