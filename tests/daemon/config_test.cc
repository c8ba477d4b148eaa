#include "daemon/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace runsync {
namespace {

using std::chrono::milliseconds;

constexpr char kSigningSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// A fresh directory under ::testing::TempDir(), removed at the end of the test.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir();
    if (!pattern.ends_with('/')) pattern += '/';
    pattern += "runsync_config_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string write(const std::string& name, const std::string& content) const {
    const std::string file = path(name);
    std::filesystem::create_directories(std::filesystem::path(file).parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

  // `text` with every "{dir}" replaced by the test's directory.
  std::string with_dir(std::string text) const {
    for (std::size_t at = text.find("{dir}"); at != std::string::npos; at = text.find("{dir}")) {
      text.replace(at, 5, dir_);
    }
    return text;
  }

  // Writes `toml` to runsync.toml and loads it.
  StatusOr<Config> load(const std::string& toml, const ConfigEnvironment& env = {}) const {
    return load_config(write("runsync.toml", toml), env);
  }

  std::string dir_;
};

void expect_same_effective_values(const Config& a, const Config& b) {
  EXPECT_EQ(a.storage.path, b.storage.path);
  EXPECT_EQ(a.storage.synchronous, b.storage.synchronous);
  EXPECT_EQ(a.storage.checkpoints, b.storage.checkpoints);
  EXPECT_EQ(a.webhook.listen, b.webhook.listen);
  EXPECT_EQ(a.webhook.path, b.webhook.path);
  EXPECT_EQ(a.webhook.secret_file, b.webhook.secret_file);
  EXPECT_EQ(a.webhook.signing_secret_file, b.webhook.signing_secret_file);
  EXPECT_EQ(a.webhook.max_body_bytes, b.webhook.max_body_bytes);
  EXPECT_EQ(a.webhook.queue_capacity, b.webhook.queue_capacity);
  EXPECT_EQ(a.webhook.secret, b.webhook.secret);
  EXPECT_EQ(a.webhook.signing_secret, b.webhook.signing_secret);
  EXPECT_EQ(a.testrail.url, b.testrail.url);
  EXPECT_EQ(a.testrail.user, b.testrail.user);
  EXPECT_EQ(a.testrail.api_key_file, b.testrail.api_key_file);
  EXPECT_EQ(a.testrail.poll_interval, b.testrail.poll_interval);
  EXPECT_EQ(a.testrail.full_sync_interval, b.testrail.full_sync_interval);
  EXPECT_EQ(a.testrail.request_timeout, b.testrail.request_timeout);
  EXPECT_EQ(a.testrail.max_requests_per_minute, b.testrail.max_requests_per_minute);
  EXPECT_EQ(a.testrail.api_key, b.testrail.api_key);
  ASSERT_EQ(a.projects.size(), b.projects.size());
  for (std::size_t i = 0; i < a.projects.size(); ++i) {
    EXPECT_EQ(a.projects[i].id, b.projects[i].id);
    EXPECT_EQ(a.projects[i].code, b.projects[i].code);
  }
  EXPECT_EQ(a.log.level, b.log.level);
}

TEST_F(ConfigTest, DefaultsWithoutFile) {
  StatusOr<Config> config = load_config("", ConfigEnvironment{});
  ASSERT_TRUE(config.is_ok()) << config.message();
  const Config defaults;
  expect_same_effective_values(*config, defaults);
  EXPECT_EQ(config->source_path, "");
  EXPECT_EQ(config->storage.path, "runsync.db");
  EXPECT_EQ(config->storage.synchronous, Durability::kFull);
  EXPECT_EQ(config->storage.checkpoints, CheckpointMode::kRunsync);
  EXPECT_EQ(config->webhook.listen, "127.0.0.1:8080");
  EXPECT_EQ(config->webhook.path, "/webhook");
  EXPECT_EQ(config->webhook.max_body_bytes, 1048576u);
  EXPECT_EQ(config->webhook.queue_capacity, 8192u);
  EXPECT_EQ(config->webhook.secret, "");
  EXPECT_EQ(config->webhook.signing_secret, "");
  EXPECT_EQ(config->testrail.url, "");
  EXPECT_EQ(config->testrail.poll_interval, milliseconds(60'000));
  EXPECT_EQ(config->testrail.full_sync_interval, milliseconds(3'600'000));
  EXPECT_EQ(config->testrail.request_timeout, milliseconds(30'000));
  EXPECT_EQ(config->testrail.max_requests_per_minute, 120u);
  EXPECT_TRUE(config->projects.empty());
  EXPECT_EQ(config->log.level, "info");
}

TEST_F(ConfigTest, EmptyFileMeansDefaults) {
  StatusOr<Config> config = load("# nothing here\n");
  ASSERT_TRUE(config.is_ok()) << config.message();
  expect_same_effective_values(*config, Config{});
  EXPECT_EQ(config->source_path, path("runsync.toml"));
}

TEST_F(ConfigTest, DatabasePathFollowsStateDirectory) {
  struct Case {
    std::optional<std::string> state_directory;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {std::nullopt, "runsync.db"},
      {"", "runsync.db"},
      {"/var/lib/runsync", "/var/lib/runsync/runsync.db"},
      {"/var/lib/runsync/", "/var/lib/runsync/runsync.db"},
      {"/var/lib/runsync:/var/lib/other", "/var/lib/runsync/runsync.db"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.state_directory.value_or("(unset)"));
    ConfigEnvironment env;
    if (c.state_directory) env.vars["STATE_DIRECTORY"] = *c.state_directory;
    EXPECT_EQ(default_database_path(env), c.expected);
    StatusOr<Config> config = load_config("", env);
    ASSERT_TRUE(config.is_ok()) << config.message();
    EXPECT_EQ(config->storage.path, c.expected);
  }
}

TEST_F(ConfigTest, ExplicitStoragePathWinsOverStateDirectory) {
  ConfigEnvironment env;
  env.vars["STATE_DIRECTORY"] = "/var/lib/runsync";
  StatusOr<Config> config = load("[storage]\npath = \"/srv/mirror.db\"\n", env);
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->storage.path, "/srv/mirror.db");

  StatusOr<Config> without_path = load("[storage]\nsynchronous = \"normal\"\n", env);
  ASSERT_TRUE(without_path.is_ok()) << without_path.message();
  EXPECT_EQ(without_path->storage.path, "/var/lib/runsync/runsync.db");
}

TEST_F(ConfigTest, FullValidFile) {
  const std::string secret_file = write("webhook-secret", "qase-shared\n");
  const std::string signing_file = write("signing", std::string(kSigningSecret) + "\n");
  const std::string key_file = write("api-key", "trkey123\r\n");
  const std::string toml = R"([storage]
path = "/var/lib/runsync/mirror.db"
synchronous = "normal"
max_batch = 64
checkpoints = "external"

[webhook]
listen = "[::1]:9090"
path = "/hooks/qase"
secret_file = "{dir}/webhook-secret"
signing_secret_file = "{dir}/signing"
max_body_bytes = 2048
queue_capacity = 16

[testrail]
url = "https://example.testrail.io"
user = "ci@example.com"
api_key_file = "{dir}/api-key"
poll_interval = "30s"
full_sync_interval = "2h"
request_timeout = "1500ms"
max_requests_per_minute = 60

[[project]]
id = 1
code = "ID"

[[project]]
id = 7
code = "WEB"

[log]
level = "debug"
)";
  StatusOr<Config> config = load(with_dir(toml));
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->source_path, path("runsync.toml"));
  EXPECT_EQ(config->storage.path, "/var/lib/runsync/mirror.db");
  EXPECT_EQ(config->storage.synchronous, Durability::kNormal);
  EXPECT_EQ(config->storage.max_batch, 64u);
  EXPECT_EQ(config->storage.checkpoints, CheckpointMode::kExternal);
  EXPECT_EQ(config->webhook.listen, "[::1]:9090");
  EXPECT_EQ(config->webhook.path, "/hooks/qase");
  EXPECT_EQ(config->webhook.secret_file, secret_file);
  EXPECT_EQ(config->webhook.signing_secret_file, signing_file);
  EXPECT_EQ(config->webhook.max_body_bytes, 2048u);
  EXPECT_EQ(config->webhook.queue_capacity, 16u);
  EXPECT_EQ(config->webhook.secret, "qase-shared");
  EXPECT_EQ(config->webhook.signing_secret, kSigningSecret);
  EXPECT_EQ(config->testrail.url, "https://example.testrail.io");
  EXPECT_EQ(config->testrail.user, "ci@example.com");
  EXPECT_EQ(config->testrail.api_key_file, key_file);
  EXPECT_EQ(config->testrail.api_key, "trkey123");
  EXPECT_EQ(config->testrail.poll_interval, milliseconds(30'000));
  EXPECT_EQ(config->testrail.full_sync_interval, milliseconds(7'200'000));
  EXPECT_EQ(config->testrail.request_timeout, milliseconds(1'500));
  EXPECT_EQ(config->testrail.max_requests_per_minute, 60u);
  ASSERT_EQ(config->projects.size(), 2u);
  EXPECT_EQ(config->projects[0].id, 1);
  EXPECT_EQ(config->projects[0].code, "ID");
  EXPECT_EQ(config->projects[1].id, 7);
  EXPECT_EQ(config->projects[1].code, "WEB");
  EXPECT_EQ(config->log.level, "debug");
}

TEST_F(ConfigTest, MissingConfigFile) {
  const std::string missing = path("nope.toml");
  StatusOr<Config> config = load_config(missing, ConfigEnvironment{});
  ASSERT_FALSE(config.is_ok());
  EXPECT_EQ(config.message(), "cannot read config " + missing + ": No such file or directory");
}

TEST_F(ConfigTest, SyntaxErrorHasLineAndColumn) {
  StatusOr<Config> config = load("[webhook]\nlisten = \n");
  ASSERT_FALSE(config.is_ok());
  EXPECT_TRUE(config.message().starts_with(path("runsync.toml") + ":2:10: ")) << config.message();
}

struct ErrorCase {
  std::string toml;
  std::string expected;  // the message after "FILE:"
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.toml; }

class ConfigErrorTest : public ConfigTest, public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(ConfigErrorTest, NamesFileAndLine) {
  StatusOr<Config> config = load(GetParam().toml);
  ASSERT_FALSE(config.is_ok());
  EXPECT_EQ(config.message(), path("runsync.toml") + ":" + GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    ConfigUnknownKeys, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{"verbose = true\n", "1: unknown key 'verbose'"},
        ErrorCase{"[storage]\npath = \"x.db\"\n\n[metrics]\nport = 1\n",
                  "4: unknown key 'metrics'"},
        ErrorCase{"[storage]\nfoo = 1\n", "2: unknown key 'storage.foo'"},
        ErrorCase{"[webhook]\nlisten = \"127.0.0.1:1\"\nfoo = 1\n", "3: unknown key 'webhook.foo'"},
        ErrorCase{"[webhook]\nzzz = 1\naaa = 2\n", "2: unknown key 'webhook.zzz'"},
        ErrorCase{"[webhook]\ntls.cert = \"x\"\n", "2: unknown key 'webhook.tls'"},
        ErrorCase{"[testrail]\nuser = \"u\"\napi_key = \"k\"\n",
                  "3: unknown key 'testrail.api_key'"},
        ErrorCase{"[[project]]\nid = 1\ncode = \"A\"\nname = \"x\"\n",
                  "4: unknown key 'project.name'"},
        ErrorCase{"[log]\nlevel = \"info\"\nformat = \"json\"\n", "3: unknown key 'log.format'"}));

INSTANTIATE_TEST_SUITE_P(
    ConfigWrongTypes, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{"storage = 1\n", "1: storage: expected a table, got an integer"},
        ErrorCase{"[storage]\npath = 1\n", "2: storage.path: expected a string, got an integer"},
        ErrorCase{"[storage]\nsynchronous = true\n",
                  "2: storage.synchronous: expected a string, got a boolean"},
        ErrorCase{"[webhook]\nlisten = 8080\n",
                  "2: webhook.listen: expected a string, got an integer"},
        ErrorCase{"[webhook]\nmax_body_bytes = \"1MB\"\n",
                  "2: webhook.max_body_bytes: expected an integer, got a string"},
        ErrorCase{"[webhook]\n\nqueue_capacity = 1.5\n",
                  "3: webhook.queue_capacity: expected an integer, got a float"},
        ErrorCase{"[testrail]\npoll_interval = 60\n",
                  "2: testrail.poll_interval: expected a duration string such as \"30s\", got "
                  "an integer"},
        ErrorCase{"[testrail]\nurl = [\"https://a\"]\n",
                  "2: testrail.url: expected a string, got an array"},
        ErrorCase{"[project]\nid = 1\n",
                  "1: project: expected an array of tables ([[project]]), got a table"},
        ErrorCase{"project = [1]\n", "1: project: expected a table, got an integer"},
        ErrorCase{"[[project]]\nid = \"1\"\ncode = \"A\"\n",
                  "2: project.id: expected an integer, got a string"},
        ErrorCase{"[[project]]\nid = 1\ncode = 1\n",
                  "3: project.code: expected a string, got an integer"},
        ErrorCase{"[log]\nlevel = 3\n", "2: log.level: expected a string, got an integer"}));

constexpr char kBadListen[] =
    "(use host:port with a port 0..65535, e.g. 127.0.0.1:8080 or [::1]:8080)";

INSTANTIATE_TEST_SUITE_P(
    ConfigInvalidValues, ConfigErrorTest,
    ::testing::Values(
        ErrorCase{"[storage]\npath = \"\"\n", "2: storage.path: must not be empty"},
        ErrorCase{"[storage]\nmax_batch = 0\n", "2: storage.max_batch: must be at least 1"},
        ErrorCase{"[storage]\nsynchronous = \"off\"\n",
                  "2: storage.synchronous: invalid value 'off' (one of full, normal)"},
        ErrorCase{"[storage]\n\ncheckpoints = \"litestream\"\n",
                  "3: storage.checkpoints: invalid value 'litestream' (one of runsync, "
                  "external)"},
        ErrorCase{"[webhook]\nlisten = \"localhost\"\n",
                  std::string("2: webhook.listen: invalid address 'localhost' ") + kBadListen},
        ErrorCase{
            "[webhook]\nlisten = \"127.0.0.1:65536\"\n",
            std::string("2: webhook.listen: invalid address '127.0.0.1:65536' ") + kBadListen},
        ErrorCase{"[webhook]\nlisten = \"::1:8080\"\n",
                  std::string("2: webhook.listen: invalid address '::1:8080' ") + kBadListen},
        ErrorCase{"[webhook]\nlisten = \":8080\"\n",
                  std::string("2: webhook.listen: invalid address ':8080' ") + kBadListen},
        ErrorCase{"[webhook]\npath = \"webhook\"\n",
                  "2: webhook.path: must start with '/' (got 'webhook')"},
        ErrorCase{"[webhook]\nmax_body_bytes = 1023\n",
                  "2: webhook.max_body_bytes: must be at least 1024"},
        ErrorCase{"[webhook]\nqueue_capacity = 0\n",
                  "2: webhook.queue_capacity: must be at least 1"},
        ErrorCase{"[testrail]\nmax_requests_per_minute = 0\n",
                  "2: testrail.max_requests_per_minute: must be at least 1"},
        ErrorCase{"[testrail]\nmax_requests_per_minute = 5000000000\n",
                  "2: testrail.max_requests_per_minute: must be at most 4294967295"},
        ErrorCase{"[testrail]\npoll_interval = \"1.5s\"\n",
                  "2: testrail.poll_interval: invalid duration '1.5s' (use e.g. 30s, 5m, 1h)"},
        ErrorCase{"[testrail]\n\nfull_sync_interval = \"0s\"\n",
                  "3: testrail.full_sync_interval: invalid duration '0s' (use e.g. 30s, 5m, 1h)"},
        ErrorCase{"[testrail]\nrequest_timeout = \"10\"\n",
                  "2: testrail.request_timeout: invalid duration '10' (use e.g. 30s, 5m, 1h)"},
        ErrorCase{"[testrail]\npoll_interval = \"500ms\"\n",
                  "2: testrail.poll_interval: must be at least 1s"},
        ErrorCase{"[testrail]\nurl = \"ftp://example.com\"\n",
                  "2: testrail.url: must be an http:// or https:// URL with a host (got 'ftp://example.com')"},
        ErrorCase{"[testrail]\nurl = \"https://\"\n",
                  "2: testrail.url: must be an http:// or https:// URL with a host (got 'https://')"},
        ErrorCase{"[testrail]\nurl = \"https://x.testrail.io:99999\"\n",
                  "2: testrail.url: must be an http:// or https:// URL with a host (got "
                  "'https://x.testrail.io:99999')"},
        ErrorCase{"[testrail]\nurl = \"https://x.testrail.io\"\n",
                  "2: testrail.url is set but testrail.user is missing"},
        ErrorCase{"[testrail]\nurl = \"https://x.testrail.io\"\nuser = \"u\"\n",
                  "2: testrail.url is set but there is no API key (set testrail.api_key_file, "
                  "$RUNSYNC_TESTRAIL_API_KEY or the testrail-api-key credential)"},
        ErrorCase{"[[project]]\nid = 0\ncode = \"A\"\n", "2: project.id: must be at least 1"},
        ErrorCase{"[[project]]\nid = -3\ncode = \"A\"\n", "2: project.id: must be at least 1"},
        ErrorCase{"[[project]]\ncode = \"A\"\n", "1: project: missing 'id'"},
        ErrorCase{"[[project]]\nid = 1\n", "1: project: missing 'code'"},
        ErrorCase{"[[project]]\nid = 1\ncode = \"\"\n", "3: project.code: must not be empty"},
        ErrorCase{"[[project]]\nid = 1\ncode = \"A\"\n\n[[project]]\nid = 1\ncode = \"B\"\n",
                  "6: project.id: duplicate project id 1 (also on line 2)"},
        ErrorCase{"[[project]]\nid = 1\ncode = \"A\"\n\n[[project]]\nid = 2\ncode = \"A\"\n",
                  "7: project.code: duplicate project code 'A' (also on line 3)"},
        ErrorCase{"[log]\nlevel = \"verbose\"\n",
                  "2: log.level: invalid value 'verbose' (one of trace, debug, info, warn, "
                  "error)"}));

TEST_F(ConfigTest, TestRailNeedsAProject) {
  ConfigEnvironment env;
  env.vars["RUNSYNC_TESTRAIL_API_KEY"] = "key";
  const std::string testrail = "[testrail]\nurl = \"http://tr.local\"\nuser = \"u\"\n";
  StatusOr<Config> none = load(testrail, env);
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.message(),
            path("runsync.toml") + ":2: testrail.url is set but no [[project]] is configured");

  StatusOr<Config> one = load(testrail + "\n[[project]]\nid = 3\ncode = \"P\"\n", env);
  ASSERT_TRUE(one.is_ok()) << one.message();
  EXPECT_EQ(one->testrail.api_key, "key");
}

TEST(ConfigDurationTest, ParsesWholeNumberAndUnit) {
  const std::vector<std::pair<std::string, milliseconds>> cases = {
      {"250ms", milliseconds(250)},     {"1ms", milliseconds(1)},
      {"30s", milliseconds(30'000)},    {"90s", milliseconds(90'000)},
      {"5m", milliseconds(300'000)},    {"1h", milliseconds(3'600'000)},
      {"1d", milliseconds(86'400'000)}, {"007s", milliseconds(7'000)},
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_duration(text), expected);
  }
}

TEST(ConfigDurationTest, RejectsAnythingElse) {
  for (const std::string text :
       {"", "0s", "0ms", "1.5s", "10", "-5s", "+5s", " 5s", "5s ", "5 s", "5S", "s", "5sec", "5w",
        "1e3s", "5ms5", "99999999999999999999d", "999999999999999999d"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(parse_duration(text), std::nullopt);
  }
}

TEST(ConfigListenAddressTest, SplitsHostAndPort) {
  struct Case {
    std::string text;
    std::optional<std::pair<std::string, std::uint16_t>> expected;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:8080", std::pair<std::string, std::uint16_t>{"127.0.0.1", 8080}},
      {"0.0.0.0:0", std::pair<std::string, std::uint16_t>{"0.0.0.0", 0}},
      {"localhost:65535", std::pair<std::string, std::uint16_t>{"localhost", 65535}},
      {"[::1]:8080", std::pair<std::string, std::uint16_t>{"::1", 8080}},
      {"[::]:80", std::pair<std::string, std::uint16_t>{"::", 80}},
      {"[::1]:0", std::pair<std::string, std::uint16_t>{"::1", 0}},
      {"localhost", std::nullopt},
      {"h:99999", std::nullopt},
      {"127.0.0.1", std::nullopt},
      {"127.0.0.1:", std::nullopt},
      {"127.0.0.1:65536", std::nullopt},
      {"127.0.0.1:http", std::nullopt},
      {"127.0.0.1:-1", std::nullopt},
      {":8080", std::nullopt},
      {"::1:8080", std::nullopt},
      {"[::1]8080", std::nullopt},
      {"[::1]", std::nullopt},
      {"[]:80", std::nullopt},
      {"", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::optional<ListenAddress> address = parse_listen_address(c.text);
    ASSERT_EQ(address.has_value(), c.expected.has_value());
    if (address) {
      EXPECT_EQ(address->host, c.expected->first);
      EXPECT_EQ(address->port, c.expected->second);
    }
  }
}

TEST_F(ConfigTest, SecretFilesAreTrimmedAtTheEnd) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"abc", "abc"},         {"abc\n", "abc"},         {"abc\r\n", "abc"},
      {"abc  \t\n\n", "abc"}, {"  a b c\n", "  a b c"},
  };
  for (const auto& [content, expected] : cases) {
    SCOPED_TRACE(content);
    const std::string file = write("secret", content);
    StatusOr<Config> config = load("[webhook]\nsecret_file = \"" + file + "\"\n");
    ASSERT_TRUE(config.is_ok()) << config.message();
    EXPECT_EQ(config->webhook.secret, expected);
  }
}

TEST_F(ConfigTest, MissingSecretFileIsAnError) {
  const std::string missing = path("missing-secret");
  StatusOr<Config> webhook = load("[webhook]\npath = \"/w\"\nsecret_file = \"" + missing + "\"\n");
  ASSERT_FALSE(webhook.is_ok());
  EXPECT_EQ(webhook.message(), path("runsync.toml") + ":3: webhook.secret_file: cannot read '" +
                                   missing + "': No such file or directory");

  StatusOr<Config> testrail = load("[testrail]\napi_key_file = \"" + missing + "\"\n");
  ASSERT_FALSE(testrail.is_ok());
  EXPECT_EQ(testrail.message(), path("runsync.toml") + ":2: testrail.api_key_file: cannot read '" +
                                    missing + "': No such file or directory");
}

TEST_F(ConfigTest, EmptySecretFileIsAnError) {
  for (const std::string content : {"", "\n", "  \r\n"}) {
    const std::string file = write("empty", content);
    StatusOr<Config> config = load("[webhook]\nsigning_secret_file = \"" + file + "\"\n");
    ASSERT_FALSE(config.is_ok());
    EXPECT_EQ(config.message(),
              path("runsync.toml") + ":2: webhook.signing_secret_file: '" + file + "' is empty");
  }
}

TEST_F(ConfigTest, EnvironmentOverridesSecretFiles) {
  const std::string secret_file = write("webhook-secret", "from-file\n");
  const std::string key_file = write("api-key", "key-from-file\n");
  const std::string toml = "[webhook]\nsecret_file = \"" + secret_file +
                           "\"\n[testrail]\napi_key_file = \"" + key_file + "\"\n";

  StatusOr<Config> files_only = load(toml);
  ASSERT_TRUE(files_only.is_ok()) << files_only.message();
  EXPECT_EQ(files_only->webhook.secret, "from-file");
  EXPECT_EQ(files_only->testrail.api_key, "key-from-file");

  ConfigEnvironment env;
  env.vars["RUNSYNC_WEBHOOK_SECRET"] = "from-env";
  env.vars["RUNSYNC_TESTRAIL_API_KEY"] = "key-from-env";
  StatusOr<Config> overridden = load(toml, env);
  ASSERT_TRUE(overridden.is_ok()) << overridden.message();
  EXPECT_EQ(overridden->webhook.secret, "from-env");
  EXPECT_EQ(overridden->testrail.api_key, "key-from-env");
  EXPECT_EQ(overridden->webhook.secret_file, secret_file);

  // An empty variable counts as unset.
  env.vars["RUNSYNC_WEBHOOK_SECRET"] = "";
  StatusOr<Config> empty_env = load(toml, env);
  ASSERT_TRUE(empty_env.is_ok()) << empty_env.message();
  EXPECT_EQ(empty_env->webhook.secret, "from-file");
}

TEST_F(ConfigTest, EnvironmentWithoutConfigFile) {
  ConfigEnvironment env;
  env.vars["RUNSYNC_WEBHOOK_SECRET"] = "env-secret";
  env.vars["RUNSYNC_TESTRAIL_API_KEY"] = "env-key";
  StatusOr<Config> config = load_config("", env);
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->webhook.secret, "env-secret");
  EXPECT_EQ(config->testrail.api_key, "env-key");
}

TEST_F(ConfigTest, OverriddenSecretFileIsNotRead) {
  ConfigEnvironment env;
  env.vars["RUNSYNC_WEBHOOK_SECRET"] = "from-env";
  StatusOr<Config> config = load("[webhook]\nsecret_file = \"" + path("root-only") + "\"\n", env);
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->webhook.secret, "from-env");
}

TEST_F(ConfigTest, CredentialsDirectoryWinsOverEnvironmentAndFiles) {
  const std::string secret_file = write("webhook-secret", "from-file\n");
  const std::string credentials = path("credentials");
  write("credentials/webhook-secret", "from-credential\n");
  write("credentials/testrail-api-key", "key-from-credential\n");
  write("credentials/webhook-signing-secret", std::string(kSigningSecret) + "\n");

  ConfigEnvironment env;
  env.vars["RUNSYNC_WEBHOOK_SECRET"] = "from-env";
  env.vars["RUNSYNC_TESTRAIL_API_KEY"] = "key-from-env";
  env.vars["CREDENTIALS_DIRECTORY"] = credentials;
  StatusOr<Config> config = load("[webhook]\nsecret_file = \"" + secret_file +
                                     "\"\nsigning_secret_file = \"" + path("missing") + "\"\n",
                                 env);
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->webhook.secret, "from-credential");
  EXPECT_EQ(config->testrail.api_key, "key-from-credential");
  EXPECT_EQ(config->webhook.signing_secret, kSigningSecret);
}

TEST_F(ConfigTest, CredentialsDirectoryWithoutTheFileFallsBack) {
  const std::string credentials = path("credentials");
  write("credentials/testrail-api-key", "key-from-credential\n");
  ConfigEnvironment env;
  env.vars["RUNSYNC_WEBHOOK_SECRET"] = "from-env";
  env.vars["CREDENTIALS_DIRECTORY"] = credentials;
  StatusOr<Config> config = load_config("", env);
  ASSERT_TRUE(config.is_ok()) << config.message();
  EXPECT_EQ(config->webhook.secret, "from-env");
  EXPECT_EQ(config->testrail.api_key, "key-from-credential");
  EXPECT_EQ(config->webhook.signing_secret, "");
}

TEST_F(ConfigTest, EmptyCredentialIsAnError) {
  const std::string credentials = path("credentials");
  const std::string credential = write("credentials/webhook-secret", "\n");
  ConfigEnvironment env;
  env.vars["CREDENTIALS_DIRECTORY"] = credentials;
  StatusOr<Config> config = load_config("", env);
  ASSERT_FALSE(config.is_ok());
  EXPECT_EQ(config.message(), "credential '" + credential + "' for webhook.secret is empty");
}

TEST_F(ConfigTest, SigningSecretMustBeWhsecAndBase64) {
  struct Case {
    std::string secret;
    bool valid;
  };
  const std::vector<Case> cases = {
      {kSigningSecret, true},
      {"whsec_YWJj", true},
      {"whsec_YWI=", true},
      {"whsec_YQ==", true},
      {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},
      {"whsec_", false},
      {"whsec_YWJ", false},
      {"whsec_YW!j", false},
      {"whsec_Y=Jj", false},
      {"whsec_Y===", false},
      {"WHSEC_YWJj", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.secret);
    const std::string file = write("signing", c.secret + "\n");
    StatusOr<Config> config = load("[webhook]\nsigning_secret_file = \"" + file + "\"\n");
    ASSERT_EQ(config.is_ok(), c.valid) << config.status().message();
    if (c.valid) {
      EXPECT_EQ(config->webhook.signing_secret, c.secret);
    } else {
      EXPECT_EQ(config.message(), path("runsync.toml") + ":2: webhook.signing_secret_file: '" +
                                      file +
                                      "': signing secret must be \"whsec_\" followed by base64");
    }
  }
}

TEST_F(ConfigTest, RenderRedactsSecrets) {
  const std::string secret_file = write("webhook-secret", "qase-TOPSECRET-1\n");
  const std::string signing_file = write("signing", std::string(kSigningSecret) + "\n");
  ConfigEnvironment env;
  env.vars["RUNSYNC_TESTRAIL_API_KEY"] = "api-TOPSECRET-2";
  StatusOr<Config> config = load("[webhook]\nsecret_file = \"" + secret_file +
                                     "\"\nsigning_secret_file = \"" + signing_file + "\"\n",
                                 env);
  ASSERT_TRUE(config.is_ok()) << config.message();
  const std::string rendered = render_config(*config);
  EXPECT_EQ(rendered.find("TOPSECRET"), std::string::npos) << rendered;
  EXPECT_EQ(rendered.find("MfKQ9r8G"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("# secret = \"<redacted>\"\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("# signing_secret = \"<redacted>\"\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("# api_key = \"<redacted>\"\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("secret_file = \"" + secret_file + "\"\n"), std::string::npos);

  const std::string without_secrets = render_config(Config{});
  EXPECT_EQ(without_secrets.find("<redacted>"), std::string::npos) << without_secrets;
}

TEST_F(ConfigTest, RenderShowsEveryKeyAndWhereItCameFrom) {
  StatusOr<Config> config =
      load("[testrail]\npoll_interval = \"120s\"\nrequest_timeout = \"2500ms\"\n");
  ASSERT_TRUE(config.is_ok()) << config.message();
  const std::string rendered = render_config(*config);
  EXPECT_TRUE(rendered.starts_with("# runsync effective configuration, loaded from " +
                                   path("runsync.toml") + "\n"))
      << rendered;
  for (const std::string line : {"[storage]\n",
                                 "path = \"runsync.db\"\n",
                                 "synchronous = \"full\"\n",
                                 "checkpoints = \"runsync\"\n",
                                 "[webhook]\n",
                                 "listen = \"127.0.0.1:8080\"\n",
                                 "path = \"/webhook\"\n",
                                 "secret_file = \"\"\n",
                                 "signing_secret_file = \"\"\n",
                                 "max_body_bytes = 1048576\n",
                                 "queue_capacity = 8192\n",
                                 "[testrail]\n",
                                 "url = \"\"\n",
                                 "user = \"\"\n",
                                 "api_key_file = \"\"\n",
                                 "poll_interval = \"2m\"\n",
                                 "full_sync_interval = \"1h\"\n",
                                 "request_timeout = \"2500ms\"\n",
                                 "max_requests_per_minute = 120\n",
                                 "[log]\n",
                                 "level = \"info\"\n"}) {
    EXPECT_NE(rendered.find(line), std::string::npos) << line << " missing in:\n" << rendered;
  }
  EXPECT_TRUE(render_config(Config{}).starts_with(
      "# runsync effective configuration: embedded defaults (no config file)\n"));
}

TEST_F(ConfigTest, RenderThenLoadGivesTheSameConfig) {
  write("webhook-secret", "s1\n");
  write("signing", std::string(kSigningSecret) + "\n");
  write("api-key", "k1\n");
  const std::string original = R"([storage]
path = "/data/with \"quotes\" and \\ backslash.db"
synchronous = "normal"
[webhook]
listen = "[::]:0"
path = "/h"
secret_file = "{dir}/webhook-secret"
signing_secret_file = "{dir}/signing"
max_body_bytes = 4096
queue_capacity = 3
[testrail]
url = "http://tr.local:8081/"
user = "bot"
api_key_file = "{dir}/api-key"
poll_interval = "90s"
full_sync_interval = "1d"
request_timeout = "1500ms"
max_requests_per_minute = 7
[[project]]
id = 12
code = "Ω-unicode"
[[project]]
id = 3
code = "B"
[log]
level = "warn"
)";
  for (const std::string& toml : {with_dir(original), std::string()}) {
    SCOPED_TRACE(toml);
    StatusOr<Config> first = load(toml);
    ASSERT_TRUE(first.is_ok()) << first.message();
    const std::string rendered = render_config(*first);
    StatusOr<Config> second = load_config(write("rendered.toml", rendered), {});
    ASSERT_TRUE(second.is_ok()) << second.message() << "\n" << rendered;
    expect_same_effective_values(*first, *second);
    const auto without_first_line = [](const std::string& text) {
      return text.substr(text.find('\n'));
    };
    EXPECT_EQ(without_first_line(render_config(*second)), without_first_line(rendered));
  }
}

TEST_F(ConfigTest, CommandsThatDoNotCallTheApiNeedNoApiKey) {
  const std::string toml =
      "[testrail]\nurl = \"https://x.testrail.io\"\nuser = \"u\"\n"
      "api_key_file = \"{dir}/no-such-key\"\n\n[webhook]\nsecret_file = \"{dir}/no-such-secret\"\n"
      "\n[[project]]\nid = 1\ncode = \"A\"\n";
  const std::string path = write("runsync.toml", with_dir(toml));
  StatusOr<Config> strict = load_config(path, {}, SecretUse::kRequired);
  ASSERT_FALSE(strict.is_ok());
  EXPECT_NE(strict.message().find("no-such-secret"), std::string::npos) << strict.message();

  StatusOr<Config> relaxed = load_config(path, {}, SecretUse::kNotNeeded);
  ASSERT_TRUE(relaxed.is_ok()) << relaxed.message();
  EXPECT_EQ(relaxed->testrail.url, "https://x.testrail.io");
  EXPECT_EQ(relaxed->testrail.api_key, "");
  EXPECT_EQ(relaxed->webhook.secret, "");
  ASSERT_EQ(relaxed->unread_secrets.size(), 2u);
  EXPECT_NE(relaxed->unread_secrets[1].find("no-such-key"), std::string::npos);
  EXPECT_NE(render_config(*relaxed).find("# not read (only serve and sync need it): "),
            std::string::npos);
  EXPECT_NE(render_config(*relaxed).find("# api_key: none found here; `runsync serve` and "
                                         "`runsync sync` need one"),
            std::string::npos);

  // Only the key missing, no file named at all: still refused for serve/sync.
  const std::string keyless = write(
      "keyless.toml",
      "[testrail]\nurl = \"https://x.testrail.io\"\nuser = \"u\"\n\n[[project]]\nid = 1\ncode = \"A\"\n");
  EXPECT_FALSE(load_config(keyless, {}, SecretUse::kRequired).is_ok());
  EXPECT_TRUE(load_config(keyless, {}, SecretUse::kNotNeeded).is_ok());
}

TEST_F(ConfigTest, ConfigPathComesFromFlagThenEnvironmentThenSystemFile) {
  const std::string system = write("system.toml", "");
  const std::string absent = dir_ + "/absent.toml";
  ConfigEnvironment none;
  ConfigEnvironment named;
  named.vars["RUNSYNC_CONFIG"] = dir_ + "/named.toml";
  ConfigEnvironment empty_name;
  empty_name.vars["RUNSYNC_CONFIG"] = "";

  EXPECT_EQ(resolve_config_path("given.toml", named, system), "given.toml");
  EXPECT_EQ(resolve_config_path("", named, system), dir_ + "/named.toml");
  EXPECT_EQ(resolve_config_path("", none, system), system);
  EXPECT_EQ(resolve_config_path("", empty_name, system), system);
  EXPECT_EQ(resolve_config_path("", none, absent), "");
  EXPECT_STREQ(kSystemConfigPath, "/etc/runsync/runsync.toml");

  // A named file that does not exist is an error, not the defaults.
  StatusOr<Config> missing = load_config(resolve_config_path("", named, absent), named);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.message().find("named.toml"), std::string::npos) << missing.message();
}

TEST(ConfigEnvironmentTest, FromProcessCopiesTheRelevantVariables) {
  ASSERT_EQ(setenv("STATE_DIRECTORY", "/var/lib/runsync-test", 1), 0);
  ASSERT_EQ(setenv("RUNSYNC_WEBHOOK_SECRET", "process-secret", 1), 0);
  ASSERT_EQ(unsetenv("RUNSYNC_TESTRAIL_API_KEY"), 0);
  const ConfigEnvironment env = ConfigEnvironment::from_process();
  unsetenv("STATE_DIRECTORY");
  unsetenv("RUNSYNC_WEBHOOK_SECRET");
  EXPECT_EQ(env.get("STATE_DIRECTORY"), "/var/lib/runsync-test");
  EXPECT_EQ(env.get("RUNSYNC_WEBHOOK_SECRET"), "process-secret");
  EXPECT_EQ(env.get("RUNSYNC_TESTRAIL_API_KEY"), std::nullopt);
  EXPECT_EQ(env.get("PATH"), std::nullopt);
  for (const auto& [name, value] : env.vars) {
    EXPECT_TRUE(name == "STATE_DIRECTORY" || name == "RUNSYNC_WEBHOOK_SECRET" ||
                name == "RUNSYNC_TESTRAIL_API_KEY" || name == "CREDENTIALS_DIRECTORY" ||
                name == "RUNSYNC_CONFIG")
        << name;
  }
}

}  // namespace
}  // namespace runsync
