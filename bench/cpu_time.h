// CPU time of the benchmark process itself, for the benchmarks that report
// their own (load generator, writer) cost beside the daemon's, and of the
// machine, for the time a virtual machine's CPUs were taken away.
#pragma once

#include <sys/resource.h>

#include <fstream>
#include <string>

namespace runsync::bench {

// User + system seconds of this process so far (getrusage).
inline double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// The machine's CPU time by kind, summed over its CPUs, from the first line
// of /proc/stat (clock ticks). On a virtual machine `steal` is time the
// hypervisor gave this machine's CPUs to someone else: a window with steal
// measured a slower machine than one without.
struct MachineCpu {
  double busy = 0;  // user, nice, system, irq, softirq
  double idle = 0;  // idle and iowait
  double steal = 0;
  bool ok = false;
};

inline MachineCpu machine_cpu() {
  MachineCpu out;
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal &&
      cpu == "cpu") {
    out.busy = user + nice + system + irq + softirq;
    out.idle = idle + iowait;
    out.steal = steal;
    out.ok = true;
  }
  return out;
}

// The share of the machine's CPU time stolen between two readings, in
// percent; -1 when /proc/stat could not be read.
inline double steal_percent(const MachineCpu& from, const MachineCpu& to) {
  if (!from.ok || !to.ok) return -1;
  const double total = (to.busy - from.busy) + (to.idle - from.idle) + (to.steal - from.steal);
  return total > 0 ? 100.0 * (to.steal - from.steal) / total : 0.0;
}

}  // namespace runsync::bench
