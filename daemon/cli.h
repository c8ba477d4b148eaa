// The `runsync` command line (SPEC §2): parses arguments and runs one
// subcommand. Errors print one line naming the problem and give a non-zero
// exit code.
#pragma once

namespace runsync {

// Returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace runsync
