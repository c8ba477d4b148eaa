// webhook.max_connections: its default, its range, and errors that name the
// file and line.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "daemon/config.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;

TEST(ListenerConfig, MaxConnectionsDefaultsTo1024AndLoadsBack) {
  TempDir dir;
  auto defaults = load_config(dir.write("empty.toml", ""), {});
  ASSERT_TRUE(defaults.is_ok()) << defaults.message();
  EXPECT_EQ(defaults->webhook.max_connections, 1024u);

  auto set = load_config(dir.write("set.toml", "[webhook]\nmax_connections = 4000\n"), {});
  ASSERT_TRUE(set.is_ok()) << set.message();
  EXPECT_EQ(set->webhook.max_connections, 4000u);
  const std::string rendered = render_config(*set);
  EXPECT_NE(rendered.find("\nmax_connections = 4000\n"), std::string::npos) << rendered;
  auto again = load_config(dir.write("rendered.toml", rendered), {});
  ASSERT_TRUE(again.is_ok()) << again.message();
  EXPECT_EQ(again->webhook.max_connections, 4000u);
}

TEST(ListenerConfig, BadMaxConnectionsIsAnErrorAtItsLine) {
  TempDir dir;
  struct Case {
    const char* value;
    const char* error;
  };
  for (const Case& c : {Case{"0", "webhook.max_connections: must be at least 1"},
                        Case{"-5", "webhook.max_connections: must be at least 1"},
                        Case{"1048577", "webhook.max_connections: must be at most 1048576"},
                        Case{"\"many\"", "webhook.max_connections: expected an integer, got a string"},
                        Case{"1.5", "webhook.max_connections: expected an integer, got a float"}}) {
    SCOPED_TRACE(c.value);
    const std::string file = dir.write(
        "bad.toml", std::string("[webhook]\npath = \"/webhook\"\nmax_connections = ") + c.value + "\n");
    auto loaded = load_config(file, {});
    ASSERT_FALSE(loaded.is_ok());
    EXPECT_EQ(loaded.message().rfind(file + ":3:", 0), 0u) << loaded.message();
    EXPECT_NE(loaded.message().find(c.error), std::string::npos) << loaded.message();
  }
}

TEST(ListenerConfig, MinimumRateDefaultsLoadBackAndBadValuesNameTheirLine) {
  TempDir dir;
  auto defaults = load_config(dir.write("empty.toml", ""), {});
  ASSERT_TRUE(defaults.is_ok()) << defaults.message();
  EXPECT_EQ(defaults->webhook.min_request_rate, 500u);
  EXPECT_EQ(defaults->webhook.min_rate_grace, std::chrono::seconds(5));

  auto set = load_config(
      dir.write("set.toml", "[webhook]\nmin_request_rate = 0\nmin_rate_grace = \"10s\"\n"), {});
  ASSERT_TRUE(set.is_ok()) << set.message();
  EXPECT_EQ(set->webhook.min_request_rate, 0u);
  const std::string rendered = render_config(*set);
  EXPECT_NE(rendered.find("\nmin_request_rate = 0\nmin_rate_grace = \"10s\"\n"), std::string::npos)
      << rendered;
  auto again = load_config(dir.write("rendered.toml", rendered), {});
  ASSERT_TRUE(again.is_ok()) << again.message();
  EXPECT_EQ(again->webhook.min_rate_grace, std::chrono::seconds(10));

  struct Case {
    const char* line;
    const char* error;
  };
  for (const Case& c :
       {Case{"min_request_rate = -1", "webhook.min_request_rate: must be at least 0"},
        Case{"min_request_rate = \"fast\"", "webhook.min_request_rate: expected an integer"},
        Case{"min_rate_grace = \"500ms\"", "webhook.min_rate_grace: must be between 1s and 30s"},
        Case{"min_rate_grace = \"1m\"", "webhook.min_rate_grace: must be between 1s and 30s"},
        Case{"min_rate_grace = 5", "webhook.min_rate_grace: "}}) {
    SCOPED_TRACE(c.line);
    const std::string file =
        dir.write("bad.toml", std::string("[webhook]\npath = \"/webhook\"\n") + c.line + "\n");
    auto loaded = load_config(file, {});
    ASSERT_FALSE(loaded.is_ok());
    EXPECT_EQ(loaded.message().rfind(file + ":3:", 0), 0u) << loaded.message();
    EXPECT_NE(loaded.message().find(c.error), std::string::npos) << loaded.message();
  }
}

}  // namespace
}  // namespace runsync
