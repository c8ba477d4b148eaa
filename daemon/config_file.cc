// read_config_file (config_file.h): the schema of each section of the
// config file, read through config_keys.h.
#include "daemon/config_file.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

#include "core/testrail_hint.h"  // check_hint_pointer
#include "daemon/config_keys.h"
#include "daemon/http/http_client.h"  // parse_url, ca_file_problem

namespace runsync {
namespace {

using config_keys::FileContext;
using config_keys::Section;
using config_keys::section_table;
using config_keys::type_name;
using std::chrono::milliseconds;

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
  if (const toml::node* node = s.find(key);
      node != nullptr && node->as_string() != nullptr && node->as_string()->get() == "0") {
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
  const bool token =
      !hints.secret_header.empty() &&
      std::all_of(hints.secret_header.begin(), hints.secret_header.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
      });
  if (!token) {
    return s.error("secret_header", "must be an HTTP header name such as X-Runsync-Secret (got '" +
                                        hints.secret_header + "')");
  }
  for (auto [key, pointer] : {std::pair<const char*, std::string*>{"run_id", &hints.run_id},
                              {"plan_id", &hints.plan_id},
                              {"project_id", &hints.project_id}}) {
    if (Status st = s.read_string(key, *pointer); !st) return st;
    if (Status st = check_hint_pointer(*pointer); !st) return s.error(key, st.message());
  }
  if (hints.run_id.empty() && hints.plan_id.empty() && hints.project_id.empty()) {
    return s.error("run_id",
                   "run_id, plan_id and project_id are all empty: no hint could name "
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

}  // namespace

Status read_config_file(const std::string& path, Config& config, KeyLocations& locations) {
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
  return read_document(file, root, config, locations);
}

}  // namespace runsync
