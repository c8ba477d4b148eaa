#include "storage/raw_statement.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

namespace runsync {

void StatementFinalizer::operator()(sqlite3_stmt* st) const { sqlite3_finalize(st); }

RawStatement prepare_raw(SQLite::Database& db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  const int rc =
      sqlite3_prepare_v3(db.getHandle(), sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc != SQLITE_OK) throw SQLite::Exception(db.getHandle(), rc);
  return RawStatement(st);
}

bool step_raw(sqlite3_stmt* st) {
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw SQLite::Exception(sqlite3_db_handle(st), rc);
}

void exec_raw(sqlite3_stmt* st) {
  sqlite3_reset(st);
  const int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    sqlite3_reset(st);
    throw SQLite::Exception(sqlite3_db_handle(st), rc);
  }
  sqlite3_reset(st);
}

void bind_text(sqlite3_stmt* st, int index, std::string_view text) {
  sqlite3_bind_text(st, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

}  // namespace runsync
