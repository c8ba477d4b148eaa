// flock() on a file of its own beside the database, for telling other
// processes that this one runs (PollerMark, WriteHealthFile). A flock is
// dropped when the process dies, so a lock that is held is current.
#pragma once

#include <string>

#include "core/status.h"

namespace runsync {

// Opens `path` with `open_flags` (O_CREAT among them creates it, mode 0644;
// O_CLOEXEC is added) and takes a shared flock() on it, waiting for one.
// Returns the descriptor, which the caller closes (closing drops the lock);
// on failure an error "cannot create PATH: ..." or "cannot lock PATH: ...",
// and nothing stays open.
StatusOr<int> open_shared_locked(const std::string& path, int open_flags);

// Whether another process holds a flock() on the file open at `fd`. Takes
// an exclusive lock without waiting to find out: when the file was free,
// this descriptor holds that lock until it is closed.
bool locked_elsewhere(int fd);

}  // namespace runsync
