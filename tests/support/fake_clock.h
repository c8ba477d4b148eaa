// The tests' one fake monotonic clock, for everything that takes a
// ClientClock (the TestRail client's backoff and Retry-After waits, the
// rate limiter).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "daemon/testrail/testrail_client.h"

namespace runsync::testing {

// Time moves only when the test moves it or, with Sleeps::kPassAtOnce, when
// a sleep passes (at once, moving the clock to its deadline). With
// Sleeps::kUntilMoved a sleep lasts until advance() with `wake` carries the
// clock past its deadline, or until its stop flag is set. Every sleep's
// length is recorded. Thread-safe.
class FakeClock final : public ClientClock {
 public:
  enum class Sleeps { kPassAtOnce, kUntilMoved };

  static constexpr TimePoint kStart = TimePoint(std::chrono::hours(1000));

  explicit FakeClock(Sleeps sleeps = Sleeps::kPassAtOnce) : mode_(sleeps) {}

  TimePoint now() override {
    std::lock_guard lock(mu_);
    return now_;
  }

  bool sleep_until(TimePoint deadline, const std::atomic<bool>& stop) override {
    std::unique_lock lock(mu_);
    if (stop) return false;
    sleeps_.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now_));
    if (mode_ == Sleeps::kPassAtOnce) {
      now_ = std::max(now_, deadline);
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

  // Moves time on by `d`; with Sleeps::kUntilMoved, sleepers notice only
  // when `wake` is true.
  void advance(std::chrono::milliseconds d, bool wake = true) {
    {
      std::lock_guard lock(mu_);
      now_ += d;
      woken_ = wake;
    }
    if (wake) moved_.notify_all();
  }

  // The length of every sleep so far, in order.
  std::vector<std::chrono::milliseconds> sleeps() {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

  // Threads sleeping now (Sleeps::kUntilMoved).
  int sleepers() {
    std::lock_guard lock(mu_);
    return sleepers_;
  }

 private:
  const Sleeps mode_;
  std::mutex mu_;
  std::condition_variable moved_;
  TimePoint now_ = kStart;
  bool woken_ = true;
  int sleepers_ = 0;
  std::vector<std::chrono::milliseconds> sleeps_;
};

}  // namespace runsync::testing
