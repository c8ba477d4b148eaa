// Opening the SQLite database and bringing its schema up to date. All
// knowledge of pragmas and schema versions lives here.
#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"

namespace SQLite {
class Database;
}

namespace runsync {

enum class Durability { kFull, kNormal };  // PRAGMA synchronous
const char* durability_name(Durability durability);  // "full", "normal"

struct OpenOptions {
  Durability durability = Durability::kFull;
  int busy_timeout_ms = 5000;
  bool create = true;      // create the file when missing
  bool read_only = false;  // for `status`: never writes, never migrates
  // false: this connection never checkpoints the WAL by itself (its commits
  // stay short); a Checkpointer must then run beside it.
  bool auto_checkpoint = true;
  // For a Store: the clock run_changes.seq and webhook_events.seq follow
  // (see change_numbers.h) and its Writer times commits by. Never null;
  // must outlive the Store.
  const Clock* clock = &real_clock();
};

// The schema version this binary creates (the highest embedded migration).
int latest_schema_version();

// Opens `path` with WAL journaling, the given durability and a busy
// timeout. A writable open also applies pending migrations, each in its own
// transaction; a database whose user_version is newer than this binary is
// refused with an error saying so. Never throws.
StatusOr<std::unique_ptr<SQLite::Database>> open_database(const std::string& path,
                                                          const OpenOptions& options);

// open_database read-only: never writes, never migrates.
StatusOr<std::unique_ptr<SQLite::Database>> open_read_only(const std::string& path);

// Free space below which `runsync status` says the database may not take
// writes: a batch of webhooks writes up to about this much to the WAL.
inline constexpr unsigned long long kMinFreeBytesForWrites = 1ull << 20;

// What `runsync status` can tell, without writing, of whether the daemon's
// writes to the database at `path` can succeed: an error naming the
// problem when the file has no write permission left for anyone, when its
// file system is mounted read-only, or when less than
// kMinFreeBytesForWrites is available on it. (The daemon's own /readyz
// probe really writes.) Never throws.
Status check_room_to_write(const std::string& path);

// PRAGMA user_version of an open database.
int schema_version(SQLite::Database& db);

// Applies pending migrations. Returns how many were applied in `applied`.
Status migrate(SQLite::Database& db, int* applied);

}  // namespace runsync
