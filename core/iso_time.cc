#include "core/iso_time.h"

#include <ctime>

namespace runsync {

std::string iso_utc(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  char buffer[32];
  const std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return n == 0 ? std::to_string(unix_seconds) : std::string(buffer, n);
}

}  // namespace runsync
