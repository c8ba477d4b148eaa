// Whether the database changed since a worker last looked.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"

namespace SQLite {
class Database;
}

namespace runsync {

// Tells cheaply whether another connection committed since the last call
// (PRAGMA data_version), so a worker can look for new outbox rows without
// scanning on every tick. Not thread-safe; one owner.
class ChangeWatcher {
 public:
  static StatusOr<std::unique_ptr<ChangeWatcher>> open(const std::string& path);
  // Takes over `db`, a read-only connection (open() makes one).
  explicit ChangeWatcher(std::unique_ptr<SQLite::Database> db);
  ~ChangeWatcher();
  // True the first time and whenever the database changed since.
  bool changed();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace runsync
