#include "storage/poller_mark.h"

#include <fcntl.h>
#include <unistd.h>

#include "storage/file_lock.h"

namespace runsync {
namespace {

std::string lock_path(const std::string& database_path) { return database_path + ".lock"; }

}  // namespace

StatusOr<std::unique_ptr<PollerMark>> PollerMark::hold(const std::string& database_path) {
  StatusOr<int> fd = open_shared_locked(lock_path(database_path), O_RDONLY | O_CREAT);
  if (!fd) return fd.status();
  return std::unique_ptr<PollerMark>(new PollerMark(fd.value()));
}

PollerMark::~PollerMark() { ::close(fd_); }

bool poller_running(const std::string& database_path) {
  const int fd = ::open(lock_path(database_path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = locked_elsewhere(fd);
  ::close(fd);  // also drops the lock when it was free and we took it
  return held;
}

}  // namespace runsync
