// Runs the built binary as a child process for end-to-end tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace runsync::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Runs `args` (args[0] is the program) to completion, capturing output.
CommandResult run_command(const std::vector<std::string>& args,
                          const std::vector<std::string>& extra_env = {});

class ChildProcess {
 public:
  // Starts `args` with stdout/stderr appended to `log_path`; extra_env are
  // "NAME=value" entries added to the environment.
  ChildProcess(const std::vector<std::string>& args, const std::string& log_path,
               const std::vector<std::string>& extra_env = {});
  ~ChildProcess();  // SIGKILLs a child that is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo);
  // Waits for exit; the wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  std::string log() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

// Starts `runsync serve --config <config>` and waits for its
// "serving webhooks on HOST:PORT" line; returns the port, or 0 on failure.
unsigned short wait_for_listen_port(const ChildProcess& child,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace runsync::testing
