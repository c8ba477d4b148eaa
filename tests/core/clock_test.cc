// The real clock's contract (core/clock.h), and the helpers every clock
// shares, on the tests' fake.
#include "core/clock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/fake_clock.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

TEST(RealClock, ASleepEndsWhenStoppedAndSaysSo) {
  const Clock& clock = real_clock();
  std::atomic<bool> stop{false};
  std::atomic<bool> slept{true};
  std::atomic<bool> returned{false};
  std::thread sleeper([&] {
    slept = clock.sleep_until(clock.now() + 1h, stop);
    returned = true;
  });
  stop = true;
  EXPECT_TRUE(testing::wait_until([&] { return returned.load(); }, 10s));
  sleeper.join();
  EXPECT_FALSE(slept.load());
}

TEST(RealClock, ASleepPastItsDeadlineReturnsTrue) {
  const Clock& clock = real_clock();
  const std::atomic<bool> stop{false};
  const auto start = clock.now();
  EXPECT_TRUE(clock.sleep_until(start + 5ms, stop));
  EXPECT_GE(clock.now(), start + 5ms);
  EXPECT_TRUE(clock.sleep_until(start, stop));  // already past
}

TEST(RealClock, WallTimeIsUnixTime) {
  const std::int64_t ms = real_clock().unix_ms();
  EXPECT_GT(ms, 1'600'000'000'000);  // after 2020
  EXPECT_GE(real_clock().unix_seconds(), ms / 1000);
}

TEST(Clock, UnixSecondsRoundDown) {
  FakeClock clock(1'700'000'000'999);
  EXPECT_EQ(clock.unix_seconds(), 1'700'000'000);
  clock.set_unix_ms(-1);
  EXPECT_EQ(clock.unix_seconds(), -1);
}

TEST(Clock, UntilIsZeroWhenPastAndAtMostADay) {
  FakeClock clock;
  EXPECT_EQ(clock.until(clock.now() - 1s), Clock::Duration::zero());
  EXPECT_EQ(clock.until(clock.now()), Clock::Duration::zero());
  EXPECT_EQ(clock.until(clock.now() + 3s), Clock::Duration(3s));
  EXPECT_EQ(clock.until(clock.now() + 48h), Clock::Duration(24h));
  EXPECT_EQ(clock.until(Clock::TimePoint::max()), Clock::Duration(24h));
}

TEST(FakeClock, AdvanceMovesWallAndMonotonicTimeTogether) {
  FakeClock clock;
  clock.set_unix_seconds(1'000);
  const auto start = clock.now();
  clock.advance(1500ms);
  EXPECT_EQ(clock.now(), start + 1500ms);
  EXPECT_EQ(clock.unix_ms(), 1'001'500);
  const std::atomic<bool> stop{false};
  EXPECT_TRUE(clock.sleep_until(clock.now() + 2s, stop));  // passes at once
  EXPECT_EQ(clock.unix_ms(), 1'003'500);
  EXPECT_EQ(clock.sleeps(), std::vector<std::chrono::milliseconds>{2s});
}

}  // namespace
}  // namespace runsync
