// open_shared_locked and locked_elsewhere (file_lock.h).
#include "storage/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace runsync {

StatusOr<int> open_shared_locked(const std::string& path, int open_flags) {
  const int fd = ::open(path.c_str(), open_flags | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("cannot create " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_SH) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::error("cannot lock " + path + ": " + std::strerror(err));
  }
  return fd;
}

bool locked_elsewhere(int fd) {
  return ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

}  // namespace runsync
