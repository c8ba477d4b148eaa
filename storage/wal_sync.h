// Making a database's committed transactions durable apart from their
// COMMIT: the fdatasync of the -wal file, which the Writer's sync thread
// runs while the writer thread goes on with the next batch (see writer.h
// and Store::split_commit_sync).
#pragma once

#include <memory>

#include "core/status.h"

struct sqlite3;

namespace runsync {

// Makes a database's -wal file durable: every transaction committed before
// sync() was called. Thread-safe: it has its own file descriptor, so it may
// run on one thread while the connection commits on another.
class WalSync {
 public:
  virtual ~WalSync() = default;
  virtual Status sync() = 0;
};

// A WalSync over the -wal file of `db`'s main database, which must be a
// file in WAL mode whose -wal file exists. Makes the -wal file's name
// durable (syncs its directory) and syncs the file once before returning.
// Errors name the file that could not be opened or synced.
StatusOr<std::unique_ptr<WalSync>> open_wal_sync(sqlite3* db);

}  // namespace runsync
