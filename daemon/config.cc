#include "daemon/config.h"

#include "core/testrail_hint.h"  // check_hint_pointer
#include "daemon/http/http_client.h"  // parse_url, ca_file_problem
#include "daemon/secrets.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <string_view>
#include <utility>

namespace runsync {
namespace {

using std::chrono::milliseconds;

std::string type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}



// Where problems found in the config file are reported: "FILE:LINE: ".
class FileContext {
 public:
  explicit FileContext(std::string path) : path_(std::move(path)) {}

  std::string at(const toml::source_region& source) const {
    if (source.begin.line == 0) return path_ + ": ";
    return path_ + ":" + std::to_string(source.begin.line) + ": ";
  }
  Status error(const toml::node& node, const std::string& message) const {
    return Status::error(at(node.source()) + message);
  }

 private:
  std::string path_;
};

// The keys of one table of the config file, read with type and range checks.
class Section {
 public:
  Section(const FileContext& file, std::string name, const toml::table& table)
      : file_(file), name_(std::move(name)), table_(table) {}

  std::string qualified(std::string_view key) const {
    return name_.empty() ? std::string(key) : name_ + "." + std::string(key);
  }

  // Reports the first (by line) key not in `known`.
  Status check_keys(std::initializer_list<std::string_view> known) const {
    const toml::key* first = nullptr;
    for (const auto& [key, node] : table_) {
      bool is_known = false;
      for (std::string_view k : known) is_known = is_known || key.str() == k;
      if (is_known) continue;
      if (first == nullptr || key.source().begin.line < first->source().begin.line) first = &key;
    }
    if (first == nullptr) return Status::ok();
    return Status::error(file_.at(first->source()) + "unknown key '" + qualified(first->str()) +
                         "'");
  }

  const toml::node* find(std::string_view key) const { return table_.get(key); }

  Status type_error(std::string_view key, const toml::node& node, std::string_view expected) const {
    return file_.error(node, qualified(key) + ": expected " + std::string(expected) + ", got " +
                                 type_name(node.type()));
  }

  Status error(std::string_view key, const std::string& message) const {
    const toml::node* node = find(key);
    const std::string where =
        node != nullptr ? file_.at(node->source()) : file_.at(table_.source());
    return Status::error(where + qualified(key) + ": " + message);
  }

  std::string location(std::string_view key) const {
    const toml::node* node = find(key);
    return file_.at(node != nullptr ? node->source() : table_.source());
  }

  Status read_string(std::string_view key, std::string& out) const {
    const toml::node* node = find(key);
    if (node == nullptr) return Status::ok();
    const auto* value = node->as_string();
    if (value == nullptr) return type_error(key, *node, "a string");
    out = value->get();
    return Status::ok();
  }

  Status read_choice(std::string_view key, std::initializer_list<std::string_view> choices,
                     std::string& out) const {
    std::string value = out;
    if (Status s = read_string(key, value); !s) return s;
    std::string list;
    for (std::string_view choice : choices) {
      if (value == choice) {
        out = value;
        return Status::ok();
      }
      list += list.empty() ? "" : ", ";
      list += choice;
    }
    return error(key, "invalid value '" + value + "' (one of " + list + ")");
  }

  // read_choice for a closed vocabulary: `name` gives each value's text.
  template <typename E, std::size_t N>
  Status read_enum(std::string_view key, const E (&values)[N], const char* (*name)(E),
                   E& out) const {
    std::string text = name(out);
    std::string list;
    for (E value : values) {
      list += list.empty() ? "" : ", ";
      list += name(value);
    }
    if (Status s = read_string(key, text); !s) return s;
    for (E value : values) {
      if (text == name(value)) {
        out = value;
        return Status::ok();
      }
    }
    return error(key, "invalid value '" + text + "' (one of " + list + ")");
  }

  template <typename T>
  Status read_integer(std::string_view key, std::int64_t min, T& out) const {
    const toml::node* node = find(key);
    if (node == nullptr) return Status::ok();
    const auto* value = node->as_integer();
    if (value == nullptr) return type_error(key, *node, "an integer");
    const std::int64_t v = value->get();
    if (v < min) return error(key, "must be at least " + std::to_string(min));
    constexpr auto kMax = std::numeric_limits<T>::max();
    if (static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(kMax)) {
      return error(key, "must be at most " + std::to_string(kMax));
    }
    out = static_cast<T>(v);
    return Status::ok();
  }

  Status read_duration(std::string_view key, milliseconds& out) const {
    const toml::node* node = find(key);
    if (node == nullptr) return Status::ok();
    const auto* value = node->as_string();
    if (value == nullptr) return type_error(key, *node, "a duration string such as \"30s\"");
    const std::optional<milliseconds> duration = parse_duration(value->get());
    if (!duration) {
      return error(key, "invalid duration '" + value->get() + "' (use e.g. 30s, 5m, 1h)");
    }
    out = *duration;
    return Status::ok();
  }

 private:
  const FileContext& file_;
  std::string name_;
  const toml::table& table_;
};

// Locations ("FILE:LINE: ") of keys checked after the file has been read; empty
// when the key was not in the file.
struct KeyLocations {
  std::string testrail_url;
  std::string testrail_webhook_path;  // "FILE:LINE: " of testrail_webhook.path
  SecretKeyLocations secrets;
};

// Returns the sub-table `name` of the root, nullptr when absent.
StatusOr<const toml::table*> section_table(const FileContext& file, const toml::table& root,
                                           std::string_view name) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return static_cast<const toml::table*>(nullptr);
  if (const toml::table* table = node->as_table()) return table;
  return file.error(*node,
                    std::string(name) + ": expected a table, got " + type_name(node->type()));
}

Status read_storage(const Section& s, Config::Storage& storage) {
  if (Status st = s.check_keys({"path", "synchronous", "max_batch", "checkpoints"}); !st) {
    return st;
  }
  if (Status st = s.read_string("path", storage.path); !st) return st;
  if (storage.path.empty()) return s.error("path", "must not be empty");
  if (Status st = s.read_integer("max_batch", 1, storage.max_batch); !st) return st;
  constexpr Durability kDurabilities[] = {Durability::kFull, Durability::kNormal};
  if (Status st = s.read_enum("synchronous", kDurabilities, durability_name, storage.synchronous);
      !st) {
    return st;
  }
  constexpr CheckpointMode kModes[] = {CheckpointMode::kRunsync, CheckpointMode::kExternal};
  return s.read_enum("checkpoints", kModes, checkpoint_mode_name, storage.checkpoints);
}

// A retention window: a duration of at least 1s, or "0" for keeping rows for ever.
Status read_window(const Section& s, std::string_view key, milliseconds& out) {
  if (const toml::node* node = s.find(key); node != nullptr && node->as_string() != nullptr &&
                                            node->as_string()->get() == "0") {
    out = milliseconds(0);
    return Status::ok();
  }
  if (Status st = s.read_duration(key, out); !st) return st;
  if (out.count() != 0 && out < std::chrono::seconds(1)) {
    return s.error(key, "must be at least 1s, or \"0\" to keep rows for ever");
  }
  return Status::ok();
}

Status read_retention(const Section& s, Config::Retention& retention) {
  if (Status st = s.check_keys({"webhook_events", "poll_cycles", "run_changes", "interval"}); !st) {
    return st;
  }
  if (Status st = read_window(s, "webhook_events", retention.webhook_events); !st) return st;
  if (Status st = read_window(s, "poll_cycles", retention.poll_cycles); !st) return st;
  if (Status st = read_window(s, "run_changes", retention.run_changes); !st) return st;
  if (Status st = s.read_duration("interval", retention.interval); !st) return st;
  if (retention.interval < milliseconds(100)) return s.error("interval", "must be at least 100ms");
  return Status::ok();
}

Status read_testrail_webhook(const Section& s, Config::TestRailWebhook& hints,
                             KeyLocations& locations) {
  if (Status st = s.check_keys({"path", "secret_file", "secret_header", "run_id", "plan_id",
                                "project_id", "min_refresh_interval"});
      !st) {
    return st;
  }
  if (Status st = s.read_string("path", hints.path); !st) return st;
  if (hints.path.empty() || hints.path.front() != '/') {
    return s.error("path", "must start with '/' (got '" + hints.path + "')");
  }
  if (s.find("path")) locations.testrail_webhook_path = s.location("path");
  if (Status st = s.read_string("secret_file", hints.secret_file); !st) return st;
  if (s.find("secret_file")) {
    locations.secrets.testrail_webhook_secret_file = s.location("secret_file");
  }
  if (Status st = s.read_string("secret_header", hints.secret_header); !st) return st;
  const bool token = !hints.secret_header.empty() &&
                     std::all_of(hints.secret_header.begin(), hints.secret_header.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) ||
                              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
                     });
  if (!token) {
    return s.error("secret_header",
                   "must be an HTTP header name such as X-Runsync-Secret (got '" +
                       hints.secret_header + "')");
  }
  for (auto [key, pointer] : {std::pair<const char*, std::string*>{"run_id", &hints.run_id},
                              {"plan_id", &hints.plan_id},
                              {"project_id", &hints.project_id}}) {
    if (Status st = s.read_string(key, *pointer); !st) return st;
    if (Status st = check_hint_pointer(*pointer); !st) return s.error(key, st.message());
  }
  if (hints.run_id.empty() && hints.plan_id.empty() && hints.project_id.empty()) {
    return s.error("run_id", "run_id, plan_id and project_id are all empty: no hint could name "
                             "anything to refresh");
  }
  if (Status st = s.read_duration("min_refresh_interval", hints.min_refresh_interval); !st) {
    return st;
  }
  if (hints.min_refresh_interval > std::chrono::hours(1)) {
    return s.error("min_refresh_interval", "must be at most 1h");
  }
  return Status::ok();
}

constexpr std::uint32_t kMaxConnectionsLimit = 1048576;

Status read_webhook(const Section& s, Config::Webhook& webhook, KeyLocations& locations) {
  if (Status st =
          s.check_keys({"listen", "path", "secret_file", "signing_secret_file", "max_body_bytes",
                        "queue_capacity", "max_connections", "min_request_rate", "min_rate_grace"});
      !st) {
    return st;
  }
  if (Status st = s.read_string("listen", webhook.listen); !st) return st;
  if (!parse_listen_address(webhook.listen)) {
    return s.error("listen", "invalid address '" + webhook.listen +
                                 "' (use host:port with a port 0..65535, e.g. 127.0.0.1:8080 or "
                                 "[::1]:8080)");
  }
  if (Status st = s.read_string("path", webhook.path); !st) return st;
  if (webhook.path.empty() || webhook.path.front() != '/') {
    return s.error("path", "must start with '/' (got '" + webhook.path + "')");
  }
  if (Status st = s.read_string("secret_file", webhook.secret_file); !st) return st;
  if (Status st = s.read_string("signing_secret_file", webhook.signing_secret_file); !st) {
    return st;
  }
  if (Status st = s.read_integer("max_body_bytes", 1024, webhook.max_body_bytes); !st) return st;
  if (Status st = s.read_integer("queue_capacity", 1, webhook.queue_capacity); !st) return st;
  if (Status st = s.read_integer("max_connections", 1, webhook.max_connections); !st) return st;
  if (webhook.max_connections > kMaxConnectionsLimit) {
    return s.error("max_connections",
                   "must be at most " + std::to_string(kMaxConnectionsLimit) +
                       " (the kernel's default limit on open files per process)");
  }
  if (Status st = s.read_integer("min_request_rate", 0, webhook.min_request_rate); !st) return st;
  if (Status st = s.read_duration("min_rate_grace", webhook.min_rate_grace); !st) return st;
  if (webhook.min_rate_grace < std::chrono::seconds(1) ||
      webhook.min_rate_grace > std::chrono::seconds(30)) {
    return s.error("min_rate_grace",
                   "must be between 1s and 30s (a request must arrive within 30 s anyway)");
  }
  if (s.find("secret_file")) locations.secrets.secret_file = s.location("secret_file");
  if (s.find("signing_secret_file")) {
    locations.secrets.signing_secret_file = s.location("signing_secret_file");
  }
  return Status::ok();
}

Status read_testrail(const Section& s, Config::TestRail& testrail, KeyLocations& locations) {
  if (Status st =
          s.check_keys({"url", "user", "api_key_file", "poll_interval", "full_sync_interval",
                        "request_timeout", "max_requests_per_minute", "ca_file"});
      !st) {
    return st;
  }
  if (Status st = s.read_string("url", testrail.url); !st) return st;
  if (!testrail.url.empty()) {
    const std::string& url = testrail.url;
    if (!parse_url(url)) {
      return s.error("url", "must be an http:// or https:// URL with a host (got '" + url + "')");
    }
    locations.testrail_url = s.location("url");
  }
  if (Status st = s.read_string("user", testrail.user); !st) return st;
  if (Status st = s.read_string("api_key_file", testrail.api_key_file); !st) return st;
  if (s.find("api_key_file")) locations.secrets.api_key_file = s.location("api_key_file");
  if (Status st = s.read_duration("poll_interval", testrail.poll_interval); !st) return st;
  if (testrail.poll_interval < std::chrono::seconds(1)) {
    return s.error("poll_interval", "must be at least 1s");
  }
  if (Status st = s.read_duration("full_sync_interval", testrail.full_sync_interval); !st) {
    return st;
  }
  if (Status st = s.read_duration("request_timeout", testrail.request_timeout); !st) return st;
  if (Status st = s.read_string("ca_file", testrail.ca_file); !st) return st;
  if (s.find("ca_file")) {
    if (testrail.ca_file.empty()) return s.error("ca_file", "must name a file of PEM certificates");
    if (auto problem = ca_file_problem(testrail.ca_file)) return s.error("ca_file", *problem);
  }
  return s.read_integer("max_requests_per_minute", 1, testrail.max_requests_per_minute);
}

Status read_projects(const FileContext& file, const toml::node& node,
                     std::vector<ProjectConfig>& projects) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    return file.error(
        node, "project: expected an array of tables ([[project]]), got " + type_name(node.type()));
  }
  std::map<std::int64_t, std::size_t> ids;
  std::map<std::string, std::size_t> codes;
  for (const toml::node& element : *array) {
    const toml::table* table = element.as_table();
    if (table == nullptr) {
      return file.error(element, "project: expected a table, got " + type_name(element.type()));
    }
    const Section s(file, "project", *table);
    if (Status st = s.check_keys({"id", "code"}); !st) return st;
    if (!s.find("id")) return file.error(*table, "project: missing 'id'");
    if (!s.find("code")) return file.error(*table, "project: missing 'code'");
    ProjectConfig project;
    if (Status st = s.read_integer("id", 1, project.id); !st) return st;
    if (Status st = s.read_string("code", project.code); !st) return st;
    if (project.code.empty()) return s.error("code", "must not be empty");
    if (auto it = ids.find(project.id); it != ids.end()) {
      return s.error("id", "duplicate project id " + std::to_string(project.id) +
                               " (also on line " + std::to_string(it->second) + ")");
    }
    if (auto it = codes.find(project.code); it != codes.end()) {
      return s.error("code", "duplicate project code '" + project.code + "' (also on line " +
                                 std::to_string(it->second) + ")");
    }
    ids.emplace(project.id, s.find("id")->source().begin.line);
    codes.emplace(project.code, s.find("code")->source().begin.line);
    projects.push_back(std::move(project));
  }
  return Status::ok();
}

Status read_document(const FileContext& file, const toml::table& root, Config& config,
                     KeyLocations& locations) {
  if (Status st = Section(file, "", root)
                      .check_keys({"storage", "webhook", "testrail", "testrail_webhook", "project",
                                   "log", "retention"});
      !st) {
    return st;
  }
  auto storage = section_table(file, root, "storage");
  if (!storage) return storage.status();
  if (*storage) {
    if (Status st = read_storage(Section(file, "storage", **storage), config.storage); !st) {
      return st;
    }
  }
  auto webhook = section_table(file, root, "webhook");
  if (!webhook) return webhook.status();
  if (*webhook) {
    if (Status st = read_webhook(Section(file, "webhook", **webhook), config.webhook, locations);
        !st) {
      return st;
    }
  }
  auto testrail = section_table(file, root, "testrail");
  if (!testrail) return testrail.status();
  if (*testrail) {
    if (Status st =
            read_testrail(Section(file, "testrail", **testrail), config.testrail, locations);
        !st) {
      return st;
    }
  }
  auto hints = section_table(file, root, "testrail_webhook");
  if (!hints) return hints.status();
  if (*hints) {
    if (Status st = read_testrail_webhook(Section(file, "testrail_webhook", **hints),
                                          config.testrail_webhook, locations);
        !st) {
      return st;
    }
  }
  if (const toml::node* projects = root.get("project")) {
    if (Status st = read_projects(file, *projects, config.projects); !st) return st;
  }
  auto retention = section_table(file, root, "retention");
  if (!retention) return retention.status();
  if (*retention) {
    if (Status st = read_retention(Section(file, "retention", **retention), config.retention);
        !st) {
      return st;
    }
  }
  auto log = section_table(file, root, "log");
  if (!log) return log.status();
  if (*log) {
    const Section s(file, "log", **log);
    if (Status st = s.check_keys({"level"}); !st) return st;
    if (Status st =
            s.read_choice("level", {"trace", "debug", "info", "warn", "error"}, config.log.level);
        !st) {
      return st;
    }
  }
  return Status::ok();
}

Status check_testrail_complete(const Config& config, const KeyLocations& locations,
                               SecretUse use) {
  if (config.testrail.url.empty()) return Status::ok();
  const std::string& at = locations.testrail_url;
  if (config.testrail.user.empty()) {
    return Status::error(at + "testrail.url is set but testrail.user is missing");
  }
  if (use == SecretUse::kRequired && config.testrail.api_key.empty()) {
    return Status::error(at +
                         "testrail.url is set but there is no API key (set "
                         "testrail.api_key_file, $RUNSYNC_TESTRAIL_API_KEY or the "
                         "testrail-api-key credential)");
  }
  if (config.projects.empty()) {
    return Status::error(at + "testrail.url is set but no [[project]] is configured");
  }
  return Status::ok();
}

}  // namespace

ConfigEnvironment ConfigEnvironment::from_process() {
  ConfigEnvironment env;
  for (const char* name : {"RUNSYNC_TESTRAIL_API_KEY", "RUNSYNC_WEBHOOK_SECRET",
                           "RUNSYNC_TESTRAIL_WEBHOOK_SECRET", "STATE_DIRECTORY",
                           "CREDENTIALS_DIRECTORY", "RUNSYNC_CONFIG"}) {
    if (const char* value = std::getenv(name)) env.vars[name] = value;
  }
  return env;
}

std::optional<std::string> ConfigEnvironment::get(const std::string& name) const {
  const auto it = vars.find(name);
  if (it == vars.end()) return std::nullopt;
  return it->second;
}

std::optional<ListenAddress> parse_listen_address(const std::string& text) {
  ListenAddress address;
  std::string_view port;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    address.host = text.substr(1, close - 1);
    port = std::string_view(text).substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    address.host = text.substr(0, colon);
    if (address.host.find(':') != std::string::npos) return std::nullopt;
    port = std::string_view(text).substr(colon + 1);
  }
  if (address.host.empty() || address.host.find_first_of("[] ") != std::string::npos) {
    return std::nullopt;
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  std::uint32_t value = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  address.port = static_cast<std::uint16_t>(value);
  return address;
}

std::string default_database_path(const ConfigEnvironment& env) {
  if (const auto dirs = env.get("STATE_DIRECTORY")) {
    const std::string first = dirs->substr(0, dirs->find(':'));
    if (!first.empty()) return first + (first.ends_with('/') ? "" : "/") + "runsync.db";
  }
  // Relative: the working directory, as SPEC §1 promises ("./runsync.db").
  return "runsync.db";
}

std::string resolve_config_path(const std::string& given, const ConfigEnvironment& env,
                                const std::string& system_path) {
  if (!given.empty()) return given;
  if (const auto named = env.get("RUNSYNC_CONFIG"); named && !named->empty()) return *named;
  std::error_code ec;
  if (!system_path.empty() && std::filesystem::exists(system_path, ec)) return system_path;
  return "";
}

StatusOr<Config> load_config(const std::string& path, const ConfigEnvironment& env,
                             SecretUse use) {
  Config config;
  config.storage.path = default_database_path(env);
  KeyLocations locations;
  if (!path.empty()) {
    FileContents contents = read_file(path);
    if (contents.error != 0) {
      return Status::error("cannot read config " + path + ": " + std::strerror(contents.error));
    }
    toml::table root;
    try {
      root = toml::parse(contents.text, std::string_view(path));
    } catch (const toml::parse_error& error) {
      const toml::source_region& source = error.source();
      return Status::error(path + ":" + std::to_string(source.begin.line) + ":" +
                           std::to_string(source.begin.column) + ": " +
                           std::string(error.description()));
    }
    const FileContext file(path);
    if (Status st = read_document(file, root, config, locations); !st) return st;
    config.source_path = path;
  }
  if (Status st = resolve_secrets(env, locations.secrets, use, config); !st) return st;
  if (Status st = check_testrail_complete(config, locations, use); !st) return st;
  const std::string& hint_path = config.testrail_webhook.path;
  if (!config.testrail.url.empty() && (hint_path == config.webhook.path || hint_path == "/healthz" || hint_path == "/readyz" ||
      hint_path == "/metrics")) {
    return Status::error(locations.testrail_webhook_path + "testrail_webhook.path: '" + hint_path +
                         "' is already served (webhook.path, /healthz, /readyz or /metrics)");
  }
  return config;
}

}  // namespace runsync
