// Whether a process that polls into the mirror is running, for telling a
// poll cycle in progress from one cut off.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace runsync {

// Held by a process that polls into the mirror (serve, sync) while it
// runs: a shared flock() on "<database>.lock" (a file of its own, since
// closing any descriptor of the database file would drop SQLite's POSIX
// locks). Released when destroyed or when the process dies.
class PollerMark {
 public:
  // Creates the lock file when missing; an error when it cannot.
  static StatusOr<std::unique_ptr<PollerMark>> hold(const std::string& database_path);
  ~PollerMark();
  PollerMark(const PollerMark&) = delete;
  PollerMark& operator=(const PollerMark&) = delete;

 private:
  explicit PollerMark(int fd) : fd_(fd) {}
  int fd_;
};

// Whether some process holds a PollerMark on `database_path` now.
bool poller_running(const std::string& database_path);

}  // namespace runsync
