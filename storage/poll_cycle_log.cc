#include "storage/poll_cycle_log.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/VariadicBind.h>

namespace runsync {

StatusOr<std::int64_t> PollCycleLog::begin(std::int64_t project_id, PollKind kind,
                                           std::int64_t started_at) {
  try {
    SQLite::Statement st(db_,
                         "INSERT INTO poll_cycles (project_id, kind, started_at) VALUES (?, ?, ?)");
    SQLite::bind(st, project_id, poll_kind_name(kind), started_at);
    st.exec();
    return static_cast<std::int64_t>(db_.getLastInsertRowid());
  } catch (const std::exception& e) {
    return Status::error(std::string("recording poll cycle: ") + e.what());
  }
}

Status PollCycleLog::finish(std::int64_t id, const PollCycleStats& stats,
                            const std::optional<std::string>& error, std::int64_t finished_at) {
  try {
    SQLite::Statement st(db_,
                         "UPDATE poll_cycles SET finished_at = ?, pages = ?, requests = ?, "
                         "runs_seen = ?, runs_changed = ?, runs_deleted = ?, error = ? "
                         "WHERE id = ?");
    SQLite::bind(st, finished_at, stats.pages, stats.requests, stats.runs_seen, stats.runs_changed,
                 stats.runs_deleted);
    if (error) st.bind(7, *error);  // else NULL, as every parameter starts
    st.bind(8, id);
    st.exec();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("recording poll cycle: ") + e.what());
  }
}

}  // namespace runsync
