#include "support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "support/temp_dir.h"

extern char** environ;

namespace runsync::testing {
namespace {

std::vector<std::string> environment_with(const std::vector<std::string>& extra,
                                          const std::vector<std::string>& unset = {}) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    bool removed = false;
    for (const auto& u : unset) removed = removed || name == u;
    if (!removed) env.emplace_back(entry);
  }
  for (const auto& x : extra) env.push_back(x);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& args,
                          const std::vector<std::string>& extra_env) {
  char out_path[] = "/tmp/runsync_cmd_out_XXXXXX";
  char err_path[] = "/tmp/runsync_cmd_err_XXXXXX";
  const int out_fd = mkstemp(out_path);
  const int err_fd = mkstemp(err_path);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> argv_s = args;
  std::vector<std::string> env_s = environment_with(extra_env);
  auto argv = pointers(argv_s);
  auto envp = pointers(env_s);
  pid_t pid = -1;
  CommandResult result;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  close(out_fd);
  close(err_fd);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  unlink(out_path);
  unlink(err_path);
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& args, const std::string& log_path,
                           const std::vector<std::string>& extra_env,
                           const std::vector<std::string>& unset_env)
    : log_path_(log_path) {
  // Everything the child needs is prepared before fork(): between fork and
  // exec it only makes system calls (this process has other threads).
  std::vector<std::string> argv_s = args;
  std::vector<std::string> env_s = environment_with(extra_env, unset_env);
  auto argv = pointers(argv_s);
  auto envp = pointers(env_s);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_path);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_error[2];  // the child writes errno here when exec fails
  if (null_fd < 0 || pipe2(exec_error, O_CLOEXEC) != 0) {
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    throw std::runtime_error("cannot start " + args[0]);
  }
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execve(argv[0], argv.data(), envp.data());
    const int err = errno;
    (void)!write(exec_error[1], &err, sizeof err);
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  close(exec_error[1]);
  int err = 0;
  const bool exec_failed = pid_ > 0 && read(exec_error[0], &err, sizeof err) == sizeof err;
  close(exec_error[0]);
  if (pid_ < 0) throw std::runtime_error("cannot start " + args[0] + ": fork failed");
  if (exec_failed) {
    int status = 0;
    waitpid(pid_, &status, 0);
    status_ = status;
    throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(err));
  }
}

ChildProcess::~ChildProcess() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

void ChildProcess::signal(int signo) {
  if (!status_) ::kill(pid_, signo);
}

bool ChildProcess::exited() {
  int status = 0;
  if (!status_ && waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
  return status_.has_value();
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  wait_until([&] { return exited(); }, timeout);
  return status_;
}

std::string ChildProcess::log() const { return read_file(log_path_); }

unsigned short wait_for_listen_port(ChildProcess& child, std::chrono::milliseconds timeout) {
  static const std::regex kLine(R"(serving webhooks on [^ ]*:(\d+)/)");
  unsigned short port = 0;
  wait_until(
      [&] {
        std::smatch m;
        const std::string log = child.log();
        if (std::regex_search(log, m, kLine)) port = static_cast<unsigned short>(std::stoi(m[1]));
        return port != 0 || child.exited();
      },
      timeout);
  return port;
}

}  // namespace runsync::testing
