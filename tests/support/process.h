// Runs the built binary as a child process, for the end-to-end tests and
// the benchmarks.
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
  // Starts `args` (args[0] a path) with stdout/stderr appended to
  // `log_path` and stdin from /dev/null; extra_env are "NAME=value" entries
  // added to the environment, unset_env names taken out of it. The child is
  // killed (SIGKILL) if this process dies first; Linux sends that signal
  // when the starting *thread* ends, so start children from a thread that
  // outlives them (the tests' and benches' main threads do). Throws when it
  // cannot start, e.g. no such program.
  ChildProcess(const std::vector<std::string>& args, const std::string& log_path,
               const std::vector<std::string>& extra_env = {},
               const std::vector<std::string>& unset_env = {});
  ~ChildProcess();  // SIGKILLs a child that is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo);
  // Waits for exit; the wait status (also when it exited earlier), or
  // nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // Whether it has exited, without waiting.
  bool exited();
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;  // set once reaped
  std::string log_path_;
};

// Waits for the "serving webhooks on HOST:PORT" line of a `runsync serve`
// child; returns the port, or 0 on timeout or when the child exits first.
unsigned short wait_for_listen_port(ChildProcess& child,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace runsync::testing
