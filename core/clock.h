// The one clock every part of runsync reads time from: wall time for what
// is stored and shown, monotonic time for intervals and deadlines, and
// waiting. Injected through constructors so tests can move time themselves
// (tests/support/fake_clock.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace runsync {

// Thread-safe: every method may be called from any thread.
class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;

  // Wall time in unix milliseconds.
  virtual std::int64_t unix_ms() const = 0;
  // Monotonic time: never goes back, unrelated to the wall time.
  virtual TimePoint now() const = 0;
  // Blocks until now() reaches `deadline` or until `stop` becomes true,
  // whichever comes first; returns false when stopped. Notices `stop`
  // within 100 ms.
  virtual bool sleep_until(TimePoint deadline, const std::atomic<bool>& stop) const = 0;

  // Wall time in unix seconds (unix_ms() rounded down).
  std::int64_t unix_seconds() const;
  // How long from now() until `deadline`: zero when it has passed, and at
  // most a day, so that a wait for it (a condition variable's wait_for)
  // cannot overflow; callers waiting for a later deadline wait again.
  Duration until(TimePoint deadline) const;
};

// The process's clock: std::chrono::system_clock, std::chrono::steady_clock
// and real sleeps. Lives as long as the process.
const Clock& real_clock();

}  // namespace runsync
