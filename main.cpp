#include <malloc.h>

#include "daemon/cli.h"

int main(int argc, char** argv) {
  // No glibc "fastbins": freed small blocks beyond the per-thread cache
  // would otherwise wait in them until the next allocation of 1 KiB or
  // more merges them all (malloc_consolidate, a few % of the writer and I/O
  // threads, which hand blocks to each other). Interleaved A/B with
  // GLIBC_TUNABLES=glibc.malloc.mxfast=0: -1% to -23% CPU per webhook event.
  mallopt(M_MXFAST, 0);
  return runsync::run_cli(argc, argv);
}
