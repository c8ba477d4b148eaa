#include "storage/database.h"

#include <sqlite3.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "storage/migrations.h"
#include "storage/wal_write_vfs.h"

namespace runsync {

const char* durability_name(Durability durability) {
  return durability == Durability::kNormal ? "normal" : "full";
}

StatusOr<std::unique_ptr<SQLite::Database>> open_read_only(const std::string& path) {
  OpenOptions options;
  options.read_only = true;
  return open_database(path, options);
}

int latest_schema_version() {
  const auto& all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

Status check_room_to_write(const std::string& path) {
  struct stat file {};
  if (::stat(path.c_str(), &file) != 0) {
    return Status::error("cannot stat " + path + ": " + std::strerror(errno));
  }
  if ((file.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) {
    return Status::error(path + " is read-only (no write permission)");
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  struct statvfs fs {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0) {
    return Status::error("cannot stat the file system holding " + path + ": " +
                         std::strerror(errno));
  }
  if ((fs.f_flag & ST_RDONLY) != 0) {
    return Status::error("the file system holding " + path + " is mounted read-only");
  }
  const unsigned long long available =
      static_cast<unsigned long long>(fs.f_bavail) * static_cast<unsigned long long>(fs.f_frsize);
  if (available < kMinFreeBytesForWrites) {
    return Status::error("the file system holding " + path + " is full (" +
                         std::to_string(available) + " bytes available)");
  }
  return Status::ok();
}

int schema_version(SQLite::Database& db) {
  return db.execAndGet("PRAGMA user_version").getInt();
}

Status migrate(SQLite::Database& db, int* applied) {
  int count = 0;
  try {
    const int current = schema_version(db);
    if (current > latest_schema_version()) {
      return Status::error("database schema version " + std::to_string(current) +
                           " is newer than this runsync understands (" +
                           std::to_string(latest_schema_version()) + "); upgrade runsync");
    }
    for (const auto& m : embedded_migrations()) {
      if (m.version <= current) continue;
      SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
      // Re-check under the write lock: another process may have migrated.
      if (schema_version(db) >= m.version) continue;
      db.exec(m.sql);
      db.exec("PRAGMA user_version = " + std::to_string(m.version));
      tx.commit();
      ++count;
    }
    // A migration that rebuilt a table leaves a -wal file as large as the
    // table, which would otherwise keep that size on disk.
    if (count > 0) db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const std::exception& e) {
    return Status::error(std::string("migration failed: ") + e.what());
  }
  if (applied) *applied = count;
  return Status::ok();
}

namespace {

// Process-wide SQLite settings, before the library initializes: no memory
// statistics, so sqlite3_malloc does not take a global mutex on every call.
// Harmless if SQLite was initialized already: the
// setting is then refused and the default stays.
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

StatusOr<std::unique_ptr<SQLite::Database>> open_database(const std::string& path,
                                                          const OpenOptions& options) {
  configure_sqlite_once();
  try {
    int flags = options.read_only ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
    if (!options.read_only && options.create) flags |= SQLite::OPEN_CREATE;
    flags |= SQLITE_OPEN_NOMUTEX;
    // A writer that syncs every commit hands each commit's WAL frames to the
    // file in one call (see wal_write_vfs.h); nothing else needs that VFS.
    const char* vfs = !options.read_only && options.durability == Durability::kFull
                          ? wal_write_vfs_name()
                          : nullptr;
    auto db = std::make_unique<SQLite::Database>(path.c_str(), flags, options.busy_timeout_ms, vfs);
    if (options.read_only) {
      const int v = schema_version(*db);
      if (v > latest_schema_version()) {
        return Status::error("database schema version " + std::to_string(v) +
                             " is newer than this runsync understands (" +
                             std::to_string(latest_schema_version()) + ")");
      }
      return db;
    }
    const std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") return Status::error("cannot switch " + path + " to WAL mode (got " + mode + ")");
    db->exec(options.durability == Durability::kFull ? "PRAGMA synchronous = FULL"
                                                     : "PRAGMA synchronous = NORMAL");
    db->exec("PRAGMA foreign_keys = ON");
    // 2 MiB: a larger page cache makes SQLite's commits slower, and the OS
    // serves the misses.
    db->exec("PRAGMA cache_size = -2000");
    if (!options.auto_checkpoint) db->exec("PRAGMA wal_autocheckpoint = 0");
    // Keep the -wal and -shm files after close so that readers without
    // write access to the directory can still open the database.
    int persist = 1;
    sqlite3_file_control(db->getHandle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    int applied = 0;
    if (Status s = migrate(*db, &applied); !s.is_ok()) return s;
    return db;
  } catch (const std::exception& e) {
    return Status::error("cannot open database " + path + ": " + e.what());
  }
}

}  // namespace runsync
