#include "storage/retention.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <string>

#include "storage/store.h"

namespace runsync {
namespace {

struct TableSql {
  const char* scan;    // ?1 after, ?2 cutoff, ?3 limit: max(key), count, rows older than ?2
  const char* remove;  // ?1 after, ?2 last key looked at, ?3 cutoff
};

TableSql sql_for(HistoryTable table) {
  switch (table) {
    case HistoryTable::kWebhookEvents:
      return {
          "SELECT max(seq), count(*), coalesce(sum(received_at < ?2), 0) FROM "
          "(SELECT seq, received_at FROM webhook_events WHERE seq > ?1 ORDER BY seq LIMIT ?3)",
          "DELETE FROM webhook_events WHERE seq > ?1 AND seq <= ?2 AND received_at < ?3 "
          "AND seq < (SELECT max(seq) FROM webhook_events)"};
    case HistoryTable::kRunChanges:
      return {
          "SELECT max(seq), count(*), coalesce(sum(changed_at < ?2), 0) FROM "
          "(SELECT seq, changed_at FROM run_changes WHERE seq > ?1 ORDER BY seq LIMIT ?3)",
          "DELETE FROM run_changes WHERE seq > ?1 AND seq <= ?2 AND changed_at < ?3 "
          "AND seq < (SELECT max(seq) FROM run_changes)"};
    case HistoryTable::kPollCycles:
      // Both kept rows are found through poll_cycles_by_project (project_id, id).
      // The newest successful row is looked up once per project in the range,
      // not once per row: for a project that has been failing for long, the
      // lookup walks back over all its failed rows.
      return {
          "SELECT max(id), count(*), coalesce(sum(started_at < ?2), 0) FROM "
          "(SELECT id, started_at FROM poll_cycles WHERE id > ?1 ORDER BY id LIMIT ?3)",
          "DELETE FROM poll_cycles AS p WHERE p.id > ?1 AND p.id <= ?2 AND p.started_at < ?3 "
          "AND p.id < (SELECT max(q.id) FROM poll_cycles AS q WHERE q.project_id = p.project_id) "
          "AND p.id NOT IN (SELECT k FROM (SELECT (SELECT s.id FROM poll_cycles AS s "
          "WHERE s.project_id = d.project_id AND s.error IS NULL AND s.finished_at IS NOT NULL "
          "ORDER BY s.id DESC LIMIT 1) AS k FROM (SELECT DISTINCT project_id FROM poll_cycles "
          "WHERE id > ?1 AND id <= ?2) AS d) WHERE k IS NOT NULL)"};
  }
  return {"", ""};
}

}  // namespace

const char* history_table_name(HistoryTable table) {
  switch (table) {
    case HistoryTable::kWebhookEvents:
      return "webhook_events";
    case HistoryTable::kPollCycles:
      return "poll_cycles";
    case HistoryTable::kRunChanges:
      return "run_changes";
  }
  return "?";
}

StatusOr<PruneBatch> prune_batch(Store& store, HistoryTable table, std::int64_t cutoff,
                                 std::int64_t after, std::int64_t limit) {
  limit = std::clamp<std::int64_t>(limit, 1, kMaxPruneBatch);
  const TableSql sql = sql_for(table);
  PruneBatch batch;
  batch.last_key = after;
  try {
    SQLite::Database& db = store.db();
    SQLite::Statement scan(db, sql.scan);
    scan.bind(1, after);
    scan.bind(2, cutoff);
    scan.bind(3, limit);
    if (!scan.executeStep() || scan.getColumn(0).isNull()) return batch;
    const std::int64_t last = scan.getColumn(0).getInt64();
    const std::int64_t looked_at = scan.getColumn(1).getInt64();
    const std::int64_t older = scan.getColumn(2).getInt64();
    batch.last_key = last;
    batch.more = looked_at == limit && older > 0;
    if (older == 0) return batch;
    SQLite::Statement remove(db, sql.remove);
    remove.bind(1, after);
    remove.bind(2, last);
    remove.bind(3, cutoff);
    batch.deleted = remove.exec();
    return batch;
  } catch (const std::exception& e) {
    return Status::error(std::string("pruning ") + history_table_name(table) + ": " + e.what());
  }
}

}  // namespace runsync
