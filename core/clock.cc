// Reading the system's clocks is not I/O of files or the network, so the
// real clock lives beside the interface.
#include "core/clock.h"

#include <algorithm>
#include <thread>

namespace runsync {
namespace {

class RealClock final : public Clock {
 public:
  std::int64_t unix_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  TimePoint now() const override { return std::chrono::steady_clock::now(); }

  bool sleep_until(TimePoint deadline, const std::atomic<bool>& stop) const override {
    constexpr std::chrono::milliseconds kSlice{50};  // how soon `stop` is noticed
    for (;;) {
      if (stop) return false;
      const TimePoint at = now();
      if (at >= deadline) return true;
      std::this_thread::sleep_for(std::min<Duration>(deadline - at, kSlice));
    }
  }
};

}  // namespace

std::int64_t Clock::unix_seconds() const {
  const std::int64_t ms = unix_ms();
  return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

Clock::Duration Clock::until(TimePoint deadline) const {
  constexpr Duration kLongest = std::chrono::hours(24);
  const TimePoint at = now();
  if (deadline <= at) return Duration::zero();
  if (deadline - kLongest > at) return kLongest;  // written so that no sum can overflow
  return deadline - at;
}

const Clock& real_clock() {
  static const RealClock clock;
  return clock;
}

}  // namespace runsync
