// The log's own rules: escaping what senders wrote, and holding back
// repeated warnings.
#include "daemon/logging.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "support/fake_clock.h"

namespace runsync {
namespace {

TEST(LogRateLimiter, LetsOnePerWindowThroughAndCountsTheRest) {
  testing::FakeClock clock;
  LogRateLimiter limiter(clock, std::chrono::seconds(10));
  EXPECT_EQ(limiter.admit("401"), std::optional<std::string>(""));
  for (int i = 0; i < 2858; ++i) EXPECT_EQ(limiter.admit("401"), std::nullopt);
  EXPECT_EQ(limiter.admit("413"), std::optional<std::string>("")) << "kinds are apart";
  clock.advance(std::chrono::milliseconds(9999));
  EXPECT_EQ(limiter.admit("401"), std::nullopt);
  clock.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(limiter.admit("401"), std::optional<std::string>(" (and 2,859 more in the last 10 s)"));
  clock.advance(std::chrono::seconds(25));
  EXPECT_EQ(limiter.admit("401"), std::optional<std::string>("")) << "none held back";
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(limiter.admit("401"), std::nullopt);
  clock.advance(std::chrono::seconds(100));
  EXPECT_EQ(limiter.admit("401"), std::optional<std::string>(" (and 1 more in the last 101 s)"));
}

TEST(LogText, EscapesControlCharactersAndCuts) {
  EXPECT_EQ(log_text("a\nb\rc\td\x01\x7f"), "a\\nb\\rc\\td\\x01\\x7f");
  EXPECT_EQ(log_text("run.started"), "run.started");
  EXPECT_EQ(log_text(std::string(300, 'a'), 4), "aaaa…(300 bytes)");
}

}  // namespace
}  // namespace runsync
