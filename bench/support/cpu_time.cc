#include "bench/support/cpu_time.h"

#include <sys/resource.h>

#include <fstream>
#include <string>

namespace runsync::bench {

double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

MachineCpu machine_cpu() {
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

double steal_percent(const MachineCpu& from, const MachineCpu& to) {
  if (!from.ok || !to.ok) return -1;
  const double total = (to.busy - from.busy) + (to.idle - from.idle) + (to.steal - from.steal);
  return total > 0 ? 100.0 * (to.steal - from.steal) / total : 0.0;
}

}  // namespace runsync::bench
