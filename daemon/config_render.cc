// render_config (config.h): the effective configuration written back as
// TOML, kept apart from the parser in config_file.cc.
#include "daemon/config.h"

#include <chrono>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

namespace runsync {
namespace {

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

void render_header(std::ostream& out, const Config& config) {
  if (config.source_path.empty()) {
    out << "# runsync effective configuration: embedded defaults (no config file)\n";
  } else {
    out << "# runsync effective configuration, loaded from " << config.source_path << "\n";
  }
  out << "# Secrets are redacted; they are not config keys, so they appear as comments.\n";
  for (const std::string& problem : config.unread_secrets) {
    out << "# not read (only serve and sync need it): " << problem << "\n";
  }
}

void render_storage(std::ostream& out, const Config::Storage& storage) {
  out << "\n[storage]\n"
      << "path = " << toml_string(storage.path) << "\n"
      << "synchronous = " << toml_string(durability_name(storage.synchronous)) << "\n"
      << "max_batch = " << storage.max_batch << "\n"
      << "checkpoints = " << toml_string(checkpoint_mode_name(storage.checkpoints)) << "\n";
}

void render_webhook(std::ostream& out, const Config::Webhook& webhook) {
  out << "\n[webhook]\n"
      << "listen = " << toml_string(webhook.listen) << "\n"
      << "path = " << toml_string(webhook.path) << "\n"
      << "secret_file = " << toml_string(webhook.secret_file) << "\n"
      << "signing_secret_file = " << toml_string(webhook.signing_secret_file) << "\n"
      << "max_body_bytes = " << webhook.max_body_bytes << "\n"
      << "queue_capacity = " << webhook.queue_capacity << "\n"
      << "max_connections = " << webhook.max_connections << "\n"
      << "min_request_rate = " << webhook.min_request_rate << "\n"
      << "min_rate_grace = " << toml_string(render_duration(webhook.min_rate_grace)) << "\n";
  if (!webhook.secret.empty()) out << "# secret = \"<redacted>\"\n";
  if (!webhook.signing_secret.empty()) out << "# signing_secret = \"<redacted>\"\n";
}

void render_testrail(std::ostream& out, const Config::TestRail& testrail) {
  out << "\n[testrail]\n"
      << "url = " << toml_string(testrail.url) << "\n"
      << "user = " << toml_string(testrail.user) << "\n"
      << "api_key_file = " << toml_string(testrail.api_key_file) << "\n"
      << "poll_interval = " << toml_string(render_duration(testrail.poll_interval)) << "\n"
      << "full_sync_interval = " << toml_string(render_duration(testrail.full_sync_interval))
      << "\n"
      << "request_timeout = " << toml_string(render_duration(testrail.request_timeout)) << "\n"
      << "max_requests_per_minute = " << testrail.max_requests_per_minute << "\n";
  if (!testrail.ca_file.empty()) out << "ca_file = " << toml_string(testrail.ca_file) << "\n";
  if (!testrail.api_key.empty()) {
    out << "# api_key = \"<redacted>\"\n";
  } else if (!testrail.url.empty()) {
    out << "# api_key: none found here; `runsync serve` and `runsync sync` need one (set "
           "testrail.api_key_file, $RUNSYNC_TESTRAIL_API_KEY or the testrail-api-key "
           "credential)\n";
  }
}

void render_testrail_webhook(std::ostream& out, const Config::TestRailWebhook& hints) {
  out << "\n[testrail_webhook]\n"
      << "path = " << toml_string(hints.path) << "\n"
      << "secret_file = " << toml_string(hints.secret_file) << "\n"
      << "secret_header = " << toml_string(hints.secret_header) << "\n"
      << "run_id = " << toml_string(hints.run_id) << "\n"
      << "plan_id = " << toml_string(hints.plan_id) << "\n"
      << "project_id = " << toml_string(hints.project_id) << "\n"
      << "min_refresh_interval = " << toml_string(render_duration(hints.min_refresh_interval))
      << "\n";
  if (!hints.secret.empty()) out << "# secret = \"<redacted>\"\n";
}

void render_retention(std::ostream& out, const Config::Retention& retention) {
  auto window = [](std::chrono::milliseconds w) {
    return w.count() == 0 ? "\"0\"" : toml_string(render_duration(w));
  };
  out << "\n[retention]\n"
      << "webhook_events = " << window(retention.webhook_events) << "\n"
      << "poll_cycles = " << window(retention.poll_cycles) << "\n"
      << "run_changes = " << window(retention.run_changes) << "\n"
      << "interval = " << toml_string(render_duration(retention.interval)) << "\n";
}

}  // namespace

std::string render_config(const Config& config) {
  std::ostringstream out;
  render_header(out, config);
  render_storage(out, config.storage);
  render_webhook(out, config.webhook);
  render_testrail(out, config.testrail);
  render_testrail_webhook(out, config.testrail_webhook);
  for (const ProjectConfig& project : config.projects) {
    out << "\n[[project]]\n"
        << "id = " << project.id << "\n"
        << "code = " << toml_string(project.code) << "\n";
  }
  out << "\n[log]\n"
      << "level = " << toml_string(config.log.level) << "\n";
  render_retention(out, config.retention);
  return out.str();
}

}  // namespace runsync
