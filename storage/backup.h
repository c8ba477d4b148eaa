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
// (WAL). The copy is written under a temporary name in `dest`'s directory
// (".NAME.partial-XXXXXX"), synced, checked with PRAGMA integrity_check,
// renamed to `dest` and the directory synced: `dest` appears only complete
// and on disk. A call killed midway may leave the temporary file, never a
// partial `dest`.
//
// Errors (one line each, naming the file): `source` missing or not a
// runsync database; `dest` already exists (it is never overwritten) or
// cannot be created; the copy failed or did not pass the check. On error
// the temporary file is removed. Thread-compatible; opens its own
// connections.
StatusOr<BackupInfo> backup_database(const std::string& source, const std::string& dest);

}  // namespace runsync
