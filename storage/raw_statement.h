// SQLite's C API for the statements on the write path that run for every
// event (the runs repository, the webhook journal), which read a run's many
// columns without SQLiteCpp's shared_ptr copy per value. Everything else
// uses SQLiteCpp.
//
// prepare_raw, step_raw and exec_raw throw SQLite::Exception on an error,
// like SQLiteCpp, so one catch in the caller handles both. Not
// thread-safe: a statement belongs to its connection's one user.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct sqlite3_stmt;

namespace SQLite {
class Database;
}

namespace runsync {

struct StatementFinalizer {
  void operator()(sqlite3_stmt* st) const;
};
using RawStatement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// Prepares `sql` on `db` for repeated use (SQLITE_PREPARE_PERSISTENT).
RawStatement prepare_raw(SQLite::Database& db, const std::string& sql);

// Steps `st`: true on a row, false when done.
bool step_raw(sqlite3_stmt* st);

// Resets `st`, steps it once and resets it again, for a statement whose
// rows (if any) nobody reads. `st` is reset on an error too.
void exec_raw(sqlite3_stmt* st);

// Binds `text` to parameter `index` without a copy: `text` must outlive
// the statement's next step.
void bind_text(sqlite3_stmt* st, int index, std::string_view text);

}  // namespace runsync
