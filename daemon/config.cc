// load_config and the rest of config.h: defaults, the file (config_file.h),
// the secrets (secrets.h), then the checks that need the whole config.
#include "daemon/config.h"

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "daemon/config_file.h"
#include "daemon/secrets.h"

namespace runsync {
namespace {

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

// With hints on, testrail_webhook.path must not be a path served already.
Status check_hint_path_free(const Config& config, const KeyLocations& locations) {
  const std::string& hint_path = config.testrail_webhook.path;
  if (!config.testrail.url.empty() &&
      (hint_path == config.webhook.path || hint_path == "/healthz" || hint_path == "/readyz" ||
       hint_path == "/metrics")) {
    return Status::error(locations.testrail_webhook_path + "testrail_webhook.path: '" + hint_path +
                         "' is already served (webhook.path, /healthz, /readyz or /metrics)");
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
    if (Status st = read_config_file(path, config, locations); !st) return st;
    config.source_path = path;
  }
  if (Status st = resolve_secrets(env, locations.secrets, use, config); !st) return st;
  if (Status st = check_testrail_complete(config, locations, use); !st) return st;
  if (Status st = check_hint_path_free(config, locations); !st) return st;
  return config;
}

}  // namespace runsync
