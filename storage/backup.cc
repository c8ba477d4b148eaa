#include "storage/backup.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "storage/database.h"

namespace runsync {
namespace {

Status sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::error("cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::error("cannot sync " + path + ": " + std::strerror(err));
  return Status::ok();
}

std::string parent_directory(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

StatusOr<BackupInfo> copy_into(const std::string& source, const std::string& dest) {
  OpenOptions options;
  options.read_only = true;
  auto opened = open_database(source, options);
  if (!opened) return opened.status();
  try {
    SQLite::Database& db = *opened.value();
    if (schema_version(db) == 0) {
      return Status::error(source + " has no runsync schema; nothing to back up");
    }
    SQLite::Statement vacuum(db, "VACUUM INTO ?");
    vacuum.bind(1, dest);
    vacuum.exec();
  } catch (const std::exception& e) {
    return Status::error("copying " + source + " into " + dest + ": " + e.what());
  }
  opened.value().reset();
  if (Status s = sync_path(dest, O_RDONLY); !s.is_ok()) return s;
  if (Status s = sync_path(parent_directory(dest), O_RDONLY | O_DIRECTORY); !s.is_ok()) return s;

  BackupInfo info;
  try {
    SQLite::Database copy(dest, SQLite::OPEN_READONLY);
    const std::string check = copy.execAndGet("PRAGMA integrity_check").getString();
    if (check != "ok") return Status::error("the copy " + dest + " fails integrity_check: " + check);
    info.schema_version = copy.execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception& e) {
    return Status::error("checking the copy " + dest + ": " + e.what());
  }
  std::error_code ec;
  info.bytes = static_cast<std::int64_t>(std::filesystem::file_size(dest, ec));
  return info;
}

}  // namespace

StatusOr<BackupInfo> backup_database(const std::string& source, const std::string& dest) {
  std::error_code ec;
  if (!std::filesystem::exists(source, ec)) {
    return Status::error("database " + source + " does not exist; nothing to back up");
  }
  // Claim the name first: O_EXCL makes "never overwrite" hold even against
  // a file appearing meanwhile, and VACUUM INTO accepts an empty file.
  const int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    if (errno == EEXIST) return Status::error(dest + " already exists; not overwritten");
    return Status::error("cannot create " + dest + ": " + std::strerror(errno));
  }
  ::close(fd);
  auto info = copy_into(source, dest);
  if (!info) {
    std::filesystem::remove(dest, ec);
    std::filesystem::remove(dest + "-journal", ec);
    std::filesystem::remove(dest + "-wal", ec);
  }
  return info;
}

}  // namespace runsync
