#include "bench/support/fsync_probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "bench/support/stats.h"

namespace runsync::bench {

std::pair<double, double> probe_fsync(const std::filesystem::path& dir, int iterations,
                                      double max_seconds) {
  using Clock = std::chrono::steady_clock;
  const std::string path = (dir / "fsync-probe").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return {-1, -1};
  std::vector<double> ms;
  const std::string page(4096, 'x');
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(max_seconds));
  for (int i = 0; i < iterations && Clock::now() < until; ++i) {
    const auto t0 = Clock::now();
    if (::pwrite(fd, page.data(), page.size(), static_cast<off_t>(i) * 4096) < 0) break;
    if (::fdatasync(fd) != 0) break;
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  if (ms.empty()) return {-1, -1};
  std::sort(ms.begin(), ms.end());
  return {percentile_of_sorted(ms, 0.5), percentile_of_sorted(ms, 0.99)};
}

}  // namespace runsync::bench
