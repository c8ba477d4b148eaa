// How long a filesystem takes to make a 4 KiB append durable (pwrite +
// fdatasync, as a WAL commit does). Virtual disks change speed for minutes
// at a time, so benchmarks print this beside each row: compare rows only
// when it is about the same.
#pragma once

#include <filesystem>
#include <utility>

namespace runsync::bench {

// p50 and p99 in ms over at most `iterations` appends to a scratch file in
// `dir`, stopping after `max_seconds`; {-1, -1} when the file cannot be
// written.
std::pair<double, double> probe_fsync(const std::filesystem::path& dir, int iterations,
                                      double max_seconds);

}  // namespace runsync::bench
