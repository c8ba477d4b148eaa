#include "storage/hint_queue.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/VariadicBind.h>

#include <algorithm>
#include <string>

namespace runsync {

namespace {

// Pending rows that name an id the mirror does not know.
constexpr const char* kUnknownRows =
    "SELECT count(*) FROM pending_refreshes p WHERE "
    "(p.kind = 'run' AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = p.entity_id)) OR "
    "(p.kind = 'plan' AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.plan_id = p.entity_id)) OR "
    "(p.kind = 'project' AND p.entity_id <> 0 AND NOT EXISTS "
    "(SELECT 1 FROM runs r WHERE r.project_id = p.entity_id))";

// The pending rows of a project's active runs.
constexpr const char* kActiveRunRowsOf =
    "FROM pending_refreshes p JOIN runs r ON r.run_id = p.entity_id "
    "WHERE p.kind = 'run' AND r.project_id = ?1 AND r.state = 'active'";

void upsert(SQLite::Database& db, HintKind kind, std::int64_t id, std::int64_t first_ms,
            std::int64_t last_ms, std::int64_t hints) {
  SQLite::Statement st(db,
                       "INSERT INTO pending_refreshes (kind, entity_id, first_hint_at_ms, "
                       "last_hint_at_ms, hints) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (kind, entity_id) DO UPDATE SET "
                       "first_hint_at_ms = min(first_hint_at_ms, excluded.first_hint_at_ms), "
                       "last_hint_at_ms = max(last_hint_at_ms, excluded.last_hint_at_ms), "
                       "hints = hints + excluded.hints");
  SQLite::bind(st, hint_kind_name(kind), id, first_ms, last_ms, hints);
  st.exec();
}

ListingSize listing_size(SQLite::Database& db, std::int64_t project_id) {
  SQLite::Statement st(db,
                       "SELECT count(*), count(DISTINCT plan_id) FROM runs "
                       "WHERE project_id = ? AND state = 'active'");
  st.bind(1, project_id);
  st.executeStep();
  return {st.getColumn(0).getInt64(), st.getColumn(1).getInt64()};
}

bool pending(SQLite::Database& db, HintKind kind, std::int64_t id) {
  SQLite::Statement st(db, "SELECT 1 FROM pending_refreshes WHERE kind = ? AND entity_id = ?");
  SQLite::bind(st, hint_kind_name(kind), id);
  return st.executeStep();
}

// Whether the mirror knows `id` as a run, plan or project.
bool known(SQLite::Database& db, HintKind kind, std::int64_t id) {
  const char* sql = kind == HintKind::kRun    ? "SELECT 1 FROM runs WHERE run_id = ?"
                    : kind == HintKind::kPlan ? "SELECT 1 FROM runs WHERE plan_id = ? LIMIT 1"
                                              : "SELECT 1 FROM runs WHERE project_id = ? LIMIT 1";
  SQLite::Statement st(db, sql);
  st.bind(1, id);
  return st.executeStep();
}

std::string json_ids(const std::vector<std::int64_t>& ids) {
  std::string out = "[";
  for (std::int64_t id : ids) out += (out.size() > 1 ? "," : "") + std::to_string(id);
  return out + "]";
}

}  // namespace

Status HintQueue::add(HintKind kind, std::int64_t id, std::int64_t at_ms) {
  try {
    if (pending(db_, kind, id) || (kind == HintKind::kProject && id == kEveryProject)) {
      upsert(db_, kind, id, at_ms, at_ms, 1);
      return Status::ok();
    }
    if (!known(db_, kind, id)) {
      if (db_.execAndGet(kUnknownRows).getInt64() >= kMaxUnknownRows) {
        upsert(db_, HintKind::kProject, kEveryProject, at_ms, at_ms, 1);
      } else {
        upsert(db_, kind, id, at_ms, at_ms, 1);
      }
      return Status::ok();
    }
    if (kind == HintKind::kRun) {
      SQLite::Statement run(db_,
                            "SELECT project_id FROM runs WHERE run_id = ? AND "
                            "state = 'active' AND project_id IS NOT NULL");
      run.bind(1, id);
      if (run.executeStep()) {
        const std::int64_t project_id = run.getColumn(0).getInt64();
        SQLite::Statement waiting(db_, std::string("SELECT count(*), min(p.first_hint_at_ms), "
                                                   "sum(p.hints) ") +
                                           kActiveRunRowsOf);
        waiting.bind(1, project_id);
        waiting.executeStep();
        const std::int64_t rows = waiting.getColumn(0).getInt64();
        if (rows + 1 > listing_cost(listing_size(db_, project_id))) {
          const std::int64_t first = std::min(at_ms, waiting.getColumn(1).getInt64());
          const std::int64_t hints = waiting.getColumn(2).getInt64() + 1;
          waiting.reset();
          SQLite::Statement drop(db_, std::string("DELETE FROM pending_refreshes WHERE kind = "
                                                  "'run' AND entity_id IN (SELECT p.entity_id ") +
                                          kActiveRunRowsOf + ")");
          drop.bind(1, project_id);
          drop.exec();
          upsert(db_, HintKind::kProject, project_id, first, at_ms, hints);
          return Status::ok();
        }
      }
    }
    upsert(db_, kind, id, at_ms, at_ms, 1);
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("storing a hint: ") + e.what());
  }
}

Status HintQueue::describe(RefreshWaiting& waiting) {
  try {
    SQLite::Statement runs(db_,
                           "SELECT run_id, project_id, plan_id, state = 'active' FROM runs "
                           "WHERE run_id IN (SELECT value FROM json_each(?)) "
                           "AND project_id IS NOT NULL");
    runs.bind(1, json_ids(waiting.runs));
    while (runs.executeStep()) {
      MirroredRun run;
      run.project_id = runs.getColumn(1).getInt64();
      if (!runs.getColumn(2).isNull()) run.plan_id = runs.getColumn(2).getInt64();
      run.active = runs.getColumn(3).getInt() != 0;
      waiting.known_runs[runs.getColumn(0).getInt64()] = run;
    }
    SQLite::Statement plans(db_,
                            "SELECT plan_id, max(project_id), max(state = 'active') FROM runs "
                            "WHERE plan_id IN (SELECT value FROM json_each(?)) "
                            "AND project_id IS NOT NULL GROUP BY plan_id");
    plans.bind(1, json_ids(waiting.plans));
    while (plans.executeStep()) {
      waiting.known_plans[plans.getColumn(0).getInt64()] = {plans.getColumn(1).getInt64(),
                                                            plans.getColumn(2).getInt() != 0};
    }
    for (auto& [project_id, size] : waiting.listings) size = listing_size(db_, project_id);
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("reading what the mirror knows of pending refreshes: ") +
                         e.what());
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
