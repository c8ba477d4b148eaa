// `runsync backup` (SPEC §2): a consistent copy of the database, safe while
// `serve` writes to it.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace runsync {

struct BackupInfo {
  std::int64_t bytes = 0;  // size of the copy
  int schema_version = 0;  // PRAGMA user_version of the copy
};

// Copies the database at `source` into the new file `dest` with VACUUM
// INTO, over a read-only connection: one read transaction, so the copy
// holds exactly what was committed when it began (every delivery
// acknowledged before the call included), and writers are never blocked
// (WAL). The copy is synced to disk and checked with PRAGMA integrity_check
// before it is reported done.
//
// Errors (one line each, naming the file): `source` missing or not a
// runsync database; `dest` already exists (it is never overwritten) or
// cannot be created; the copy failed or did not pass the check. On error a
// `dest` this call created is removed. Thread-compatible; opens its own
// connections.
StatusOr<BackupInfo> backup_database(const std::string& source, const std::string& dest);

}  // namespace runsync
