#include "bench/support/machine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

namespace runsync::bench {

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

}  // namespace

Machine machine() {
  Machine m;
  utsname host{};
  ::uname(&host);
  m.host = host.nodename;
  m.kernel = std::string(host.sysname) + " " + host.release;
  m.cpu_model = cpu_model();
  m.cpus = std::thread::hardware_concurrency();
  ::getloadavg(m.load, 3);
  return m;
}

std::string utc_now_text() {
  char buf[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string default_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

std::string make_temp_dir(const std::string& dir, const std::string& prefix) {
  std::string path = (std::filesystem::path(dir) / (prefix + "XXXXXX")).string();
  if (::mkdtemp(path.data()) == nullptr) {
    std::fprintf(stderr, "error: cannot create a directory in %s: %s\n", dir.c_str(),
                 std::strerror(errno));
    return "";
  }
  return path;
}

bool binary_is_executable(const std::string& binary) {
  if (::access(binary.c_str(), X_OK) == 0) return true;
  std::fprintf(stderr, "error: runsync binary %s is not executable (use --binary)\n",
               binary.c_str());
  return false;
}

}  // namespace runsync::bench
