#include "storage/backup.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

// Copies into `temp` (an empty file), syncs it and checks it.
StatusOr<BackupInfo> copy_into(const std::string& source, const std::string& temp) {
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
    vacuum.bind(1, temp);
    vacuum.exec();
  } catch (const std::exception& e) {
    return Status::error("copying " + source + " into " + temp + ": " + e.what());
  }
  opened.value().reset();
  if (Status s = sync_path(temp, O_RDONLY); !s.is_ok()) return s;

  BackupInfo info;
  try {
    SQLite::Database copy(temp, SQLite::OPEN_READONLY);
    const std::string check = copy.execAndGet("PRAGMA integrity_check").getString();
    if (check != "ok")
      return Status::error("the copy " + temp + " fails integrity_check: " + check);
    info.schema_version = copy.execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception& e) {
    return Status::error("checking the copy " + temp + ": " + e.what());
  }
  std::error_code ec;
  info.bytes = static_cast<std::int64_t>(std::filesystem::file_size(temp, ec));
  return info;
}

// Gives the complete copy `temp` the name `dest`, never replacing a file
// there. Does not sync the directory.
Status publish(const std::string& temp, const std::string& dest) {
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::ok();
  }
  if (errno == EEXIST) return Status::error(dest + " already exists; not overwritten");
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    return Status::error("cannot rename " + temp + " to " + dest + ": " + std::strerror(errno));
  }
  // A file system without RENAME_NOREPLACE: a hard link is just as atomic,
  // and fails as well when the name is taken.
  if (::link(temp.c_str(), dest.c_str()) != 0) {
    if (errno == EEXIST) return Status::error(dest + " already exists; not overwritten");
    return Status::error("cannot link " + temp + " to " + dest + ": " + std::strerror(errno));
  }
  ::unlink(temp.c_str());
  return Status::ok();
}

void remove_copy(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  std::filesystem::remove(path + "-journal", ec);
  std::filesystem::remove(path + "-wal", ec);
}

}  // namespace

StatusOr<BackupInfo> backup_database(const std::string& source, const std::string& dest) {
  std::error_code ec;
  if (!std::filesystem::exists(source, ec)) {
    return Status::error("database " + source + " does not exist; nothing to back up");
  }
  // Refused at once rather than after the copy; publish() refuses again if
  // the name is taken meanwhile.
  if (std::filesystem::symlink_status(dest, ec).type() != std::filesystem::file_type::not_found) {
    if (!ec) return Status::error(dest + " already exists; not overwritten");
  }
  // The copy is made under a temporary name beside `dest` (so the rename
  // stays in one file system) and renamed only once it is complete, synced
  // and checked: a backup killed midway leaves no file named `dest`.
  const std::filesystem::path target(dest);
  std::string temp =
      (target.parent_path() / ("." + target.filename().string() + ".partial-XXXXXX")).string();
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return Status::error("cannot create " + dest + ": " + std::strerror(errno));
  ::close(fd);
  auto info = copy_into(source, temp);
  if (!info) {
    remove_copy(temp);
    return info;
  }
  if (Status s = publish(temp, dest); !s.is_ok()) {
    remove_copy(temp);
    return s;
  }
  if (Status s = sync_path(parent_directory(dest), O_RDONLY | O_DIRECTORY); !s.is_ok()) return s;
  return info;
}

}  // namespace runsync
