#include "storage/hint_queue.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/VariadicBind.h>

namespace runsync {

Status HintQueue::add(HintKind kind, std::int64_t id, std::int64_t at_ms) {
  try {
    SQLite::Statement st(db_,
                         "INSERT INTO pending_refreshes (kind, entity_id, first_hint_at_ms, "
                         "last_hint_at_ms, hints) VALUES (?, ?, ?, ?, 1) "
                         "ON CONFLICT (kind, entity_id) DO UPDATE SET "
                         "last_hint_at_ms = max(last_hint_at_ms, excluded.last_hint_at_ms), "
                         "hints = hints + 1");
    SQLite::bind(st, hint_kind_name(kind), id, at_ms, at_ms);
    st.exec();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("storing a hint: ") + e.what());
  }
}

StatusOr<std::int64_t> HintQueue::add_runs_of_plan(std::int64_t plan_id, std::int64_t at_ms,
                                                   const std::vector<std::int64_t>& listed) {
  try {
    std::string ids = "[";
    for (std::int64_t id : listed) ids += (ids.size() > 1 ? "," : "") + std::to_string(id);
    ids += "]";
    SQLite::Statement st(db_,
                         "INSERT INTO pending_refreshes (kind, entity_id, first_hint_at_ms, "
                         "last_hint_at_ms, hints) "
                         "SELECT 'run', run_id, ?, ?, 1 FROM runs "
                         "WHERE plan_id = ? AND state <> 'deleted' "
                         "AND run_id NOT IN (SELECT value FROM json_each(?)) "
                         "ON CONFLICT (kind, entity_id) DO UPDATE SET "
                         "last_hint_at_ms = max(last_hint_at_ms, excluded.last_hint_at_ms), "
                         "hints = hints + 1");
    SQLite::bind(st, at_ms, at_ms, plan_id, ids);
    return static_cast<std::int64_t>(st.exec());
  } catch (const std::exception& e) {
    return Status::error(std::string("queueing the runs of a plan: ") + e.what());
  }
}

StatusOr<std::vector<PendingRefresh>> HintQueue::oldest(std::int64_t limit) {
  try {
    SQLite::Statement st(db_,
                         "SELECT kind, entity_id, first_hint_at_ms, last_hint_at_ms, hints "
                         "FROM pending_refreshes ORDER BY first_hint_at_ms LIMIT ?");
    st.bind(1, limit);
    std::vector<PendingRefresh> rows;
    while (st.executeStep()) {
      auto kind = hint_kind_from_name(st.getColumn(0).getString());
      if (!kind) continue;  // the table's CHECK makes this impossible
      rows.push_back({*kind, st.getColumn(1).getInt64(), st.getColumn(2).getInt64(),
                      st.getColumn(3).getInt64(), st.getColumn(4).getInt64()});
    }
    return rows;
  } catch (const std::exception& e) {
    return Status::error(std::string("reading pending refreshes: ") + e.what());
  }
}

StatusOr<bool> HintQueue::served(const PendingRefresh& taken, std::int64_t began_at_ms) {
  try {
    // By the count, not by time: a clock stepped back must not lose a hint.
    SQLite::Statement del(db_,
                          "DELETE FROM pending_refreshes WHERE kind = ? AND entity_id = ? AND "
                          "hints = ?");
    SQLite::bind(del, hint_kind_name(taken.kind), taken.id, taken.hints);
    if (del.exec() > 0) return true;
    SQLite::Statement keep(db_,
                           "UPDATE pending_refreshes SET first_hint_at_ms = "
                           "max(first_hint_at_ms, ?) WHERE kind = ? AND entity_id = ?");
    SQLite::bind(keep, began_at_ms, hint_kind_name(taken.kind), taken.id);
    keep.exec();
    return false;
  } catch (const std::exception& e) {
    return Status::error(std::string("finishing a refresh: ") + e.what());
  }
}

Status HintQueue::drop(HintKind kind, std::int64_t id) {
  try {
    SQLite::Statement st(db_, "DELETE FROM pending_refreshes WHERE kind = ? AND entity_id = ?");
    SQLite::bind(st, hint_kind_name(kind), id);
    st.exec();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("dropping a refresh: ") + e.what());
  }
}

StatusOr<std::int64_t> HintQueue::count() {
  try {
    return db_.execAndGet("SELECT count(*) FROM pending_refreshes").getInt64();
  } catch (const std::exception& e) {
    return Status::error(std::string("counting pending refreshes: ") + e.what());
  }
}

}  // namespace runsync
