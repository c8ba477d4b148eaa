#include "storage/poller_mark.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace runsync {
namespace {

std::string lock_path(const std::string& database_path) { return database_path + ".lock"; }

}  // namespace

StatusOr<std::unique_ptr<PollerMark>> PollerMark::hold(const std::string& database_path) {
  const std::string path = lock_path(database_path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("cannot create " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_SH) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::error("cannot lock " + path + ": " + std::strerror(err));
  }
  return std::unique_ptr<PollerMark>(new PollerMark(fd));
}

PollerMark::~PollerMark() { ::close(fd_); }

bool poller_running(const std::string& database_path) {
  const int fd = ::open(lock_path(database_path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // also drops the lock when it was free and we took it
  return held;
}

}  // namespace runsync
