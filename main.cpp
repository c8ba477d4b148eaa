#include <malloc.h>

#include "daemon/cli.h"

int main(int argc, char** argv) {
  // No glibc "fastbins": the writer and I/O threads hand small blocks to
  // each other, and merging them back (malloc_consolidate) costs CPU on
  // every event.
  mallopt(M_MXFAST, 0);
  return runsync::run_cli(argc, argv);
}
