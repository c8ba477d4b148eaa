// The [testrail_webhook] section of the config file and its secret.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "daemon/config.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;

class TestRailWebhookConfigTest : public ::testing::Test {
 protected:
  // `toml` with polling configured after it: TestRail's webhooks are taken
  // only with testrail.url set.
  StatusOr<Config> load(const std::string& toml, ConfigEnvironment env = {}) {
    env.vars["RUNSYNC_TESTRAIL_API_KEY"] = "key";
    return load_config(dir_.write("runsync.toml", toml + kPolling), env);
  }
  static constexpr const char* kPolling =
      "\n[testrail]\nurl = \"https://example.testrail.io\"\nuser = \"ci@example.com\"\n"
      "[[project]]\nid = 1\ncode = \"P\"\n";
  std::string file() const { return dir_.file("runsync.toml"); }
  testing::TempDir dir_;
};

TEST_F(TestRailWebhookConfigTest, Defaults) {
  auto config = load("");
  ASSERT_TRUE(config.is_ok()) << config.message();
  const auto& h = config->testrail_webhook;
  EXPECT_EQ(h.path, "/testrail/webhook");
  EXPECT_EQ(h.secret_header, "X-Runsync-Secret");
  EXPECT_EQ(h.run_id, "/run_id");
  EXPECT_EQ(h.plan_id, "/plan_id");
  EXPECT_EQ(h.project_id, "/project_id");
  EXPECT_EQ(h.min_refresh_interval, 2s);
  EXPECT_EQ(h.secret, "");
}

TEST_F(TestRailWebhookConfigTest, EveryKeyAndTheSecretFromEachSource) {
  const std::string secret_file = dir_.write("hint-secret", "from-file\n");
  const std::string toml = "[testrail_webhook]\npath = \"/hooks/testrail\"\nsecret_file = \"" +
                           secret_file +
                           "\"\nsecret_header = \"X-TestRail-Token\"\nrun_id = \"/data/run\"\n"
                           "plan_id = \"\"\nproject_id = \"/data/project\"\n"
                           "min_refresh_interval = \"500ms\"\n";
  auto config = load(toml);
  ASSERT_TRUE(config.is_ok()) << config.message();
  const auto& h = config->testrail_webhook;
  EXPECT_EQ(h.path, "/hooks/testrail");
  EXPECT_EQ(h.secret_header, "X-TestRail-Token");
  EXPECT_EQ(h.run_id, "/data/run");
  EXPECT_EQ(h.plan_id, "");
  EXPECT_EQ(h.project_id, "/data/project");
  EXPECT_EQ(h.min_refresh_interval, 500ms);
  EXPECT_EQ(h.secret, "from-file");

  ConfigEnvironment env;
  env.vars["RUNSYNC_TESTRAIL_WEBHOOK_SECRET"] = "from-env";
  EXPECT_EQ(load(toml, env)->testrail_webhook.secret, "from-env");

  testing::TempDir credentials;
  credentials.write("testrail-webhook-secret", "from-credential\n");
  env.vars["CREDENTIALS_DIRECTORY"] = credentials.path();
  EXPECT_EQ(load(toml, env)->testrail_webhook.secret, "from-credential");

  const std::string rendered = render_config(*config);
  EXPECT_EQ(rendered.find("from-file"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("# secret = \"<redacted>\""), std::string::npos) << rendered;
  ConfigEnvironment key;
  key.vars["RUNSYNC_TESTRAIL_API_KEY"] = "key";
  auto again = load_config(dir_.write("rendered.toml", rendered), key);
  ASSERT_TRUE(again.is_ok()) << again.message() << "\n" << rendered;
  EXPECT_EQ(again->testrail_webhook.path, h.path);
  EXPECT_EQ(again->testrail_webhook.secret_header, h.secret_header);
  EXPECT_EQ(again->testrail_webhook.run_id, h.run_id);
  EXPECT_EQ(again->testrail_webhook.plan_id, h.plan_id);
  EXPECT_EQ(again->testrail_webhook.project_id, h.project_id);
  EXPECT_EQ(again->testrail_webhook.min_refresh_interval, h.min_refresh_interval);
  EXPECT_EQ(again->testrail_webhook.secret, "from-file");
}

TEST_F(TestRailWebhookConfigTest, BadValuesNameTheKeyAndLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"[testrail_webhook]\nsecret = \"x\"\n", "2: unknown key 'testrail_webhook.secret'"},
      {"[testrail_webhook]\npath = \"testrail\"\n",
       "2: testrail_webhook.path: must start with '/' (got 'testrail')"},
      {"[testrail_webhook]\nsecret_header = \"X Secret\"\n",
       "2: testrail_webhook.secret_header: must be an HTTP header name such as X-Runsync-Secret "
       "(got 'X Secret')"},
      {"[testrail_webhook]\nsecret_header = \"\"\n",
       "2: testrail_webhook.secret_header: must be an HTTP header name such as X-Runsync-Secret "
       "(got '')"},
      {"[testrail_webhook]\n\nrun_id = \"run_id\"\n",
       "3: testrail_webhook.run_id: must be a JSON pointer such as \"/run_id\" or "
       "\"/data/run/id\" (got \"run_id\"), or \"\" to read nothing"},
      {"[testrail_webhook]\nproject_id = \"/\"\n",
       "2: testrail_webhook.project_id: must name a field, e.g. \"/run_id\" (got \"/\")"},
      {"[testrail_webhook]\nrun_id = \"\"\nplan_id = \"\"\nproject_id = \"\"\n",
       "2: testrail_webhook.run_id: run_id, plan_id and project_id are all empty: no hint could "
       "name anything to refresh"},
      {"[testrail_webhook]\nmin_refresh_interval = \"2 s\"\n",
       "2: testrail_webhook.min_refresh_interval: invalid duration '2 s' (use e.g. 30s, 5m, 1h)"},
      {"[testrail_webhook]\nmin_refresh_interval = \"2h\"\n",
       "2: testrail_webhook.min_refresh_interval: must be at most 1h"},
      {"[webhook]\npath = \"/in\"\n[testrail_webhook]\npath = \"/in\"\n",
       "4: testrail_webhook.path: '/in' is already served (webhook.path, /healthz, /readyz or "
       "/metrics)"},
      {"[testrail_webhook]\npath = \"/metrics\"\n",
       "2: testrail_webhook.path: '/metrics' is already served (webhook.path, /healthz, /readyz "
       "or /metrics)"},
  };
  for (const auto& [toml, expected] : cases) {
    SCOPED_TRACE(toml);
    auto config = load(toml);
    ASSERT_FALSE(config.is_ok());
    EXPECT_EQ(config.message(), file() + ":" + expected);
  }
}

TEST_F(TestRailWebhookConfigTest, AnUnreadableSecretFileIsAnErrorOnlyForServe) {
  const std::string toml =
      "[testrail_webhook]\nsecret_file = \"" + dir_.file("missing") + "\"\n";
  auto serve = load(toml);
  ASSERT_FALSE(serve.is_ok());
  EXPECT_NE(serve.message().find("testrail_webhook.secret_file: cannot read"), std::string::npos)
      << serve.message();
  auto status = load_config(file(), {}, SecretUse::kNotNeeded);
  ASSERT_TRUE(status.is_ok()) << status.message();
  EXPECT_EQ(status->testrail_webhook.secret, "");
}

TEST_F(TestRailWebhookConfigTest, WithoutTestRailTheSectionIsNotChecked) {
  // Without testrail.url the endpoint is off: its secret is not read and
  // its path may be anything.
  auto config = load_config(
      dir_.write("off.toml", "[webhook]\npath = \"/testrail/webhook\"\n[testrail_webhook]\n"
                             "secret_file = \"" + dir_.file("missing") + "\"\n"),
      {});
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->testrail_webhook.secret, "");
}

}  // namespace
}  // namespace runsync
