// CPU time of the benchmark process itself, for the benchmarks that report
// their own (load generator, writer) cost beside the daemon's, and of the
// machine, for the time a virtual machine's CPUs were taken away.
#pragma once

namespace runsync::bench {

// User + system seconds of this process so far (getrusage).
double process_cpu_seconds();

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

MachineCpu machine_cpu();

// The share of the machine's CPU time stolen between two readings, in
// percent; -1 when /proc/stat could not be read.
double steal_percent(const MachineCpu& from, const MachineCpu& to);

}  // namespace runsync::bench
