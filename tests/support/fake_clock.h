// The tests' one fake clock, for everything that takes a runsync::Clock:
// wall time the test sets or moves, monotonic time the test moves, and
// sleeps that pass at once or when the test moves time.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/clock.h"

namespace runsync::testing {

// Time moves only when the test moves it or, with Sleeps::kPassAtOnce, when
// a sleep passes (at once, moving the clock to its deadline). Moving time
// (advance() or a sleep) moves the wall time and the monotonic time
// together; set_unix_ms() sets the wall time alone. With Sleeps::kUntilMoved
// a sleep lasts until advance() with `wake` carries the clock past its
// deadline, or until its stop flag is set. Every sleep's length is
// recorded. Thread-safe.
class FakeClock final : public Clock {
 public:
  enum class Sleeps { kPassAtOnce, kUntilMoved };

  static constexpr TimePoint kStart = TimePoint(std::chrono::hours(1000));
  static constexpr std::int64_t kStartUnixMs = 1'800'000'000'000;

  explicit FakeClock(Sleeps sleeps = Sleeps::kPassAtOnce) : mode_(sleeps) {}
  explicit FakeClock(std::int64_t unix_ms, Sleeps sleeps = Sleeps::kPassAtOnce)
      : mode_(sleeps), unix_ms_(unix_ms) {}

  std::int64_t unix_ms() const override {
    std::lock_guard lock(mu_);
    return unix_ms_;
  }

  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }

  bool sleep_until(TimePoint deadline, const std::atomic<bool>& stop) const override {
    std::unique_lock lock(mu_);
    if (stop) return false;
    sleeps_.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now_));
    if (mode_ == Sleeps::kPassAtOnce) {
      if (deadline > now_) move_locked(deadline - now_);
      return true;
    }
    ++sleepers_;
    // The stop flag cannot notify: look at it now and then.
    while (!stop && !(now_ >= deadline && woken_)) {
      moved_.wait_for(lock, std::chrono::milliseconds(1));
    }
    --sleepers_;
    return !stop;
  }

  // Moves time (wall and monotonic) on by `d`; with Sleeps::kUntilMoved,
  // sleepers notice only when `wake` is true.
  void advance(std::chrono::milliseconds d, bool wake = true) {
    {
      std::lock_guard lock(mu_);
      move_locked(d);
      woken_ = wake;
    }
    if (wake) moved_.notify_all();
  }

  // Sets the wall time; the monotonic time stays.
  void set_unix_ms(std::int64_t unix_ms) {
    std::lock_guard lock(mu_);
    unix_ms_ = unix_ms;
  }
  void set_unix_seconds(std::int64_t unix_seconds) { set_unix_ms(unix_seconds * 1000); }

  // The length of every sleep so far, in order.
  std::vector<std::chrono::milliseconds> sleeps() const {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

  // Threads sleeping now (Sleeps::kUntilMoved).
  int sleepers() const {
    std::lock_guard lock(mu_);
    return sleepers_;
  }

 private:
  void move_locked(Duration d) const {
    now_ += d;
    unix_ms_ += std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  }

  const Sleeps mode_;
  mutable std::mutex mu_;
  mutable std::condition_variable moved_;
  mutable TimePoint now_ = kStart;
  mutable std::int64_t unix_ms_ = kStartUnixMs;
  mutable bool woken_ = true;
  mutable int sleepers_ = 0;
  mutable std::vector<std::chrono::milliseconds> sleeps_;
};

}  // namespace runsync::testing
