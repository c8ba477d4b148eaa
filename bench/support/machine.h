// What the benchmarks print about the machine and the time they ran, and
// the files and clocks they share.
#pragma once

#include <cstdint>
#include <string>

namespace runsync::bench {

struct Machine {
  std::string host;            // uname nodename
  std::string kernel;          // uname sysname and release, e.g. "Linux 6.1.0"
  std::string cpu_model;       // from /proc/cpuinfo; "unknown CPU" when absent
  unsigned cpus = 0;           // std::thread::hardware_concurrency
  double load[3] = {0, 0, 0};  // load averages over 1, 5 and 15 minutes
};

// The machine now.
Machine machine();

// The current time as "2026-12-06 10:48:00 UTC".
std::string utc_now_text();

// Unix seconds now (the system clock).
std::int64_t unix_now();

// Where temporary files go: $TMPDIR, else /tmp.
std::string default_temp_dir();

// A new directory `prefix` + "XXXXXX" (mkdtemp) under `dir`; empty, with
// "error: cannot create a directory in DIR" on stderr, when it cannot be made.
std::string make_temp_dir(const std::string& dir, const std::string& prefix);

// True when `binary` is executable; else prints "error: runsync binary ...
// is not executable (use --binary)" to stderr.
bool binary_is_executable(const std::string& binary);

}  // namespace runsync::bench
