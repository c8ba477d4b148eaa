// CPU time of the benchmark process itself, for the benchmarks that report
// their own (load generator, writer) cost beside the daemon's.
#pragma once

#include <sys/resource.h>

namespace runsync::bench {

// User + system seconds of this process so far (getrusage).
inline double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

}  // namespace runsync::bench
