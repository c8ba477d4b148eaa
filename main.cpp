#include "daemon/cli.h"

int main(int argc, char** argv) { return runsync::run_cli(argc, argv); }
