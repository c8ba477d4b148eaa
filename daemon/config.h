// runsync's configuration (SPEC §3): a TOML file, embedded defaults for every
// key, environment and systemd-credential overrides for the secrets.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/duration.h"
#include "core/project.h"
#include "core/status.h"
#include "storage/database.h"
#include "storage/write_path.h"

namespace runsync {


struct Config {
  // Where the config was read from; empty when only defaults are in use.
  std::string source_path;

  struct Storage {
    std::string path = "runsync.db";  // see default_database_path()
    // "full" (default: survives power loss) or "normal" (survives a crash).
    Durability synchronous = Durability::kFull;
    // Most writes committed in one transaction (group commit); 1 commits
    // each write on its own.
    std::uint64_t max_batch = 4096;
    // Who checkpoints the WAL: "runsync" (its own checkpointer) or
    // "external" (a replicator such as Litestream, which must own them).
    CheckpointMode checkpoints = CheckpointMode::kRunsync;
  } storage;

  struct Webhook {
    std::string listen = "127.0.0.1:8080";  // host:port; [v6]:port
    std::string path = "/webhook";
    std::string secret_file;          // X-Qase-Secret shared secret
    std::string signing_secret_file;  // Standard Webhooks whsec_… key
    std::uint64_t max_body_bytes = 1048576;
    std::uint64_t queue_capacity = 8192;  // events waiting for the writer; 503 beyond
    // Open connections at most; further ones wait in the listen backlog.
    std::uint32_t max_connections = 1024;
    // A request (header, then body) must average this many bytes per second
    // after its first min_rate_grace; slower clients are closed. 0: off.
    std::uint32_t min_request_rate = 500;
    std::chrono::milliseconds min_rate_grace{5000};
    // Resolved secrets (file contents trimmed of trailing newlines, or the
    // override). Never logged, redacted when printed.
    std::string secret;
    std::string signing_secret;
  } webhook;

  struct TestRail {
    std::string url;  // empty: no polling, no write-back
    std::string user;
    std::string api_key_file;
    std::chrono::milliseconds poll_interval{60'000};
    std::chrono::milliseconds full_sync_interval{3'600'000};
    std::chrono::milliseconds request_timeout{30'000};
    std::uint32_t max_requests_per_minute = 120;
    // PEM certificates of further trusted CAs (a company CA), beside the
    // system store; empty: the system store only.
    std::string ca_file;
    std::string api_key;  // resolved; never logged
  } testrail;

  // TestRail's own webhooks as refresh hints (SPEC §4a); the endpoint is
  // on only when testrail.url is set.
  struct TestRailWebhook {
    std::string path = "/testrail/webhook";
    std::string secret_file;
    std::string secret_header = "X-Runsync-Secret";  // a custom header the admin adds
    // Where each id is read: JSON pointers; a form's field is the last segment.
    std::string run_id = "/run_id";
    std::string plan_id = "/plan_id";
    std::string project_id = "/project_id";
    // A run, plan or project is refreshed at most once per this window.
    std::chrono::milliseconds min_refresh_interval{2'000};
    std::string secret;  // resolved; never logged
  } testrail_webhook;

  std::vector<ProjectConfig> projects;

  struct Log {
    std::string level = "info";  // trace, debug, info, warn, error
  } log;

  // How long the history tables keep their rows; zero keeps them for ever
  // ("0" in the file). Rows are deleted in the background every `interval`.
  struct Retention {
    std::chrono::milliseconds webhook_events{std::chrono::hours(24 * 30)};
    std::chrono::milliseconds poll_cycles{std::chrono::hours(24 * 30)};
    std::chrono::milliseconds run_changes{0};  // a feed for readers: kept by default
    std::chrono::milliseconds interval{std::chrono::minutes(10)};
  } retention;

  // With SecretUse::kNotNeeded: why each secret that could not be read was
  // left empty (never the secret itself).
  std::vector<std::string> unread_secrets;
};

// Environment the loader consults; injected so tests need not touch the
// real environment.
struct ConfigEnvironment {
  std::map<std::string, std::string> vars;  // e.g. RUNSYNC_TESTRAIL_API_KEY, RUNSYNC_CONFIG
  static ConfigEnvironment from_process();
  std::optional<std::string> get(const std::string& name) const;
};

// Where the packaged config lives; read when no --config is given.
inline constexpr const char* kSystemConfigPath = "/etc/runsync/runsync.toml";

// The config file a command reads (SPEC §2): `given` (--config) when not
// empty; else $RUNSYNC_CONFIG when set and not empty (it must then exist:
// load_config reports it when not); else `system_path` when that file
// exists; else "" (embedded defaults). `system_path` is a parameter so that
// tests need not depend on the real /etc.
std::string resolve_config_path(const std::string& given, const ConfigEnvironment& env,
                                const std::string& system_path = kSystemConfigPath);

// What the command about to run needs of the secrets.
enum class SecretUse {
  // serve and sync call the API: with testrail.url set the API key is
  // required, and every configured secret file must be readable.
  kRequired,
  // Commands that never call the API nor take webhooks (check-config,
  // status, migrate, backup, run …): no API key is required, and a secret
  // that cannot be read (a root-only file, a credential only the service
  // sees) is left empty instead of being an error.
  kNotNeeded,
};

// Loads `path` (or only the defaults when `path` is empty), applies the
// overrides, reads the secret files and validates everything. On error the
// message names the problem, with "file:line:" for problems inside the file
// (unknown keys, wrong types, bad durations).
//
// Secrets, lowest priority first: the *_file named in the config, then the
// environment (RUNSYNC_WEBHOOK_SECRET, RUNSYNC_TESTRAIL_API_KEY,
// RUNSYNC_TESTRAIL_WEBHOOK_SECRET), then files in $CREDENTIALS_DIRECTORY
// (webhook-secret, testrail-api-key, testrail-webhook-secret, and
// webhook-signing-secret, which has no environment variable). A secret file
// is read only when nothing of higher priority supplies the secret, so a
// root-only file handed over by systemd's LoadCredential= is not an error.
// Empty environment variables count as unset. Relative paths (storage.path,
// the *_file keys) are relative to the working directory.
StatusOr<Config> load_config(const std::string& path, const ConfigEnvironment& env,
                             SecretUse use = SecretUse::kRequired);

// The database path used when the config does not set storage.path: the first
// entry of $STATE_DIRECTORY (systemd may list several, separated by ':') plus
// "/runsync.db", else "runsync.db" in the working directory.
std::string default_database_path(const ConfigEnvironment& env);

// webhook.listen split up: "127.0.0.1:8080" or "[::1]:8080" (host without the
// brackets). nullopt when malformed: no port, port outside 0..65535, empty
// host, or an IPv6 address without brackets.
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<ListenAddress> parse_listen_address(const std::string& text);

// The effective config as TOML, secrets redacted ("<redacted>" when set;
// with testrail.url set and no API key, a comment says serve and sync need one).
// Every key is written out; the resolved secrets, which are not config keys,
// appear as comment lines, so the output loads back into the same config.
std::string render_config(const Config& config);

}  // namespace runsync
