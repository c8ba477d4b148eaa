// Many clients at once against a listener on 127.0.0.1, each sending a
// whole request — head and body — before it reads, as Python's http.client
// does, and not giving up when the server answers early. For the tests and
// the benchmark of the listener's memory under hostile load.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace runsync::testing {

struct HostileLoadResult {
  std::size_t answered = 0;        // an HTTP status line arrived
  std::map<int, std::size_t> statuses;  // by status code
  std::size_t reset = 0;           // the connection broke before an answer came
  std::size_t unfinished = 0;      // still open at the deadline
  std::size_t body_incomplete = 0; // answered, but the connection broke before the whole body was sent
};

// Opens `connections` connections to 127.0.0.1:`port` at once; each sends
// `head` (which must announce `body_bytes`) then `body_bytes` bytes, and
// reads meanwhile; it is done once it has sent everything and the server
// has closed, or the connection broke. Returns when every connection is done or
// `deadline` passes. `tick` (optional) is called about every 10 ms.
HostileLoadResult run_hostile_load(unsigned short port, std::size_t connections,
                                   const std::string& head, std::size_t body_bytes,
                                   std::chrono::milliseconds deadline,
                                   const std::function<void()>& tick = {});

// A line of /proc/<pid>/status in kB ("VmRSS", "VmHWM"); -1 when absent.
long proc_status_kb(pid_t pid, const std::string& field);
// Resets the peak resident set size (VmHWM) of `pid` to the current size.
bool reset_peak_rss(pid_t pid);

}  // namespace runsync::testing
