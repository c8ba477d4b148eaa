// The [retention] section of the config file.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "daemon/config.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using std::chrono::hours;
using std::chrono::milliseconds;

class RetentionConfigTest : public ::testing::Test {
 protected:
  StatusOr<Config> load(const std::string& toml) {
    return load_config(dir_.write("runsync.toml", toml), {});
  }
  std::string file() const { return dir_.file("runsync.toml"); }
  testing::TempDir dir_;
};

TEST_F(RetentionConfigTest, Defaults) {
  auto config = load("");
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->retention.webhook_events, hours(24 * 30));
  EXPECT_EQ(config->retention.poll_cycles, hours(24 * 30));
  EXPECT_EQ(config->retention.run_changes, milliseconds(0));  // kept for ever
  EXPECT_EQ(config->retention.interval, 10min);
}

TEST_F(RetentionConfigTest, EveryKey) {
  auto config = load(
      "[retention]\nwebhook_events = \"7d\"\npoll_cycles = \"12h\"\nrun_changes = \"365d\"\n"
      "interval = \"30s\"\n");
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->retention.webhook_events, hours(24 * 7));
  EXPECT_EQ(config->retention.poll_cycles, 12h);
  EXPECT_EQ(config->retention.run_changes, hours(24 * 365));
  EXPECT_EQ(config->retention.interval, 30s);
}

TEST_F(RetentionConfigTest, ZeroKeepsForEver) {
  auto config = load("[retention]\nwebhook_events = \"0\"\npoll_cycles = \"0\"\n");
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->retention.webhook_events, milliseconds(0));
  EXPECT_EQ(config->retention.poll_cycles, milliseconds(0));
}

TEST_F(RetentionConfigTest, BadValuesNameTheKeyAndLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"[retention]\njournal = \"1d\"\n", "2: unknown key 'retention.journal'"},
      {"[retention]\nwebhook_events = 30\n",
       "2: retention.webhook_events: expected a duration string such as \"30s\", got an integer"},
      {"[retention]\n\npoll_cycles = \"30 days\"\n",
       "3: retention.poll_cycles: invalid duration '30 days' (use e.g. 30s, 5m, 1h)"},
      {"[retention]\nrun_changes = \"500ms\"\n",
       "2: retention.run_changes: must be at least 1s, or \"0\" to keep rows for ever"},
      {"[retention]\ninterval = \"0\"\n",
       "2: retention.interval: invalid duration '0' (use e.g. 30s, 5m, 1h)"},
      {"[retention]\ninterval = \"10ms\"\n", "2: retention.interval: must be at least 100ms"},
      {"retention = \"30d\"\n", "1: retention: expected a table, got a string"},
  };
  for (const auto& [toml, expected] : cases) {
    SCOPED_TRACE(toml);
    auto config = load(toml);
    ASSERT_FALSE(config.is_ok());
    EXPECT_EQ(config.message(), file() + ":" + expected);
  }
}

TEST_F(RetentionConfigTest, RenderedConfigLoadsBackTheSame) {
  auto config = load(
      "[retention]\nwebhook_events = \"0\"\npoll_cycles = \"36h\"\n"
      "run_changes = \"90d\"\ninterval = \"250ms\"\n");
  ASSERT_TRUE(config.is_ok()) << config.message();
  const std::string rendered = render_config(*config);
  EXPECT_NE(rendered.find("[retention]\nwebhook_events = \"0\"\npoll_cycles = \"36h\"\n"
                          "run_changes = \"90d\"\ninterval = \"250ms\"\n"),
            std::string::npos)
      << rendered;
  auto again = load_config(dir_.write("rendered.toml", rendered), {});
  ASSERT_TRUE(again.is_ok()) << again.message() << "\n" << rendered;
  EXPECT_EQ(again->retention.webhook_events, config->retention.webhook_events);
  EXPECT_EQ(again->retention.poll_cycles, config->retention.poll_cycles);
  EXPECT_EQ(again->retention.run_changes, config->retention.run_changes);
  EXPECT_EQ(again->retention.interval, config->retention.interval);
}

}  // namespace
}  // namespace runsync
