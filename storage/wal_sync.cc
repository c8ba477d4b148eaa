#include "storage/wal_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace runsync {
namespace {

Status errno_status(const std::string& what, const std::string& path, int err) {
  return Status::error(what + " " + path + ": " + std::strerror(err));
}

}  // namespace

WalSync::WalSync(std::string database_path) : wal_path_(database_path + "-wal") {
  const auto parent = std::filesystem::path(database_path).parent_path();
  dir_path_ = parent.empty() ? "." : parent.string();
}

WalSync::~WalSync() {
  if (fd_ >= 0) ::close(fd_);
}

Status WalSync::sync() {
  struct stat at_path {};
  if (::stat(wal_path_.c_str(), &at_path) != 0) {
    if (errno == ENOENT) return Status::ok();  // no WAL: nothing written since it was removed
    return errno_status("cannot stat", wal_path_, errno);
  }
  if (fd_ < 0 || static_cast<unsigned long long>(at_path.st_ino) != inode_ ||
      static_cast<unsigned long long>(at_path.st_dev) != device_) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return errno_status("cannot open", wal_path_, errno);
    struct stat opened {};
    if (::fstat(fd_, &opened) != 0) return errno_status("cannot stat", wal_path_, errno);
    inode_ = static_cast<unsigned long long>(opened.st_ino);
    device_ = static_cast<unsigned long long>(opened.st_dev);
    const int dir = ::open(dir_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return errno_status("cannot open", dir_path_, errno);
    const int rc = ::fsync(dir);
    const int err = errno;
    ::close(dir);
    if (rc != 0) {
      inode_ = 0;  // sync the directory again next time
      return errno_status("cannot sync", dir_path_, err);
    }
  }
  if (::fdatasync(fd_) != 0) return errno_status("cannot sync", wal_path_, errno);
  return Status::ok();
}

}  // namespace runsync
