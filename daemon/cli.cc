#include "daemon/cli.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <boost/version.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <openssl/opensslv.h>

#include "daemon/app.h"
#include "daemon/config.h"
#include "daemon/logging.h"
#include "storage/database.h"
#include "storage/report.h"

#include <SQLiteCpp/SQLiteCpp.h>

namespace runsync {
namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Loads the config or prints the error; nullopt means "exit 2".
std::optional<Config> load_or_report(const std::string& path) {
  auto config = load_config(path, ConfigEnvironment::from_process());
  if (!config) {
    std::cerr << "runsync: " << config.message() << "\n";
    return std::nullopt;
  }
  return std::move(config).value();
}

int cmd_serve(const std::string& path) {
  auto config = load_or_report(path);
  if (!config) return 2;
  Logger logger = make_logger(stderr_is_journal());
  if (auto level = parse_log_level(config->log.level)) set_log_level(logger, *level);
  App app(std::move(*config), ConfigEnvironment::from_process(), logger);
  return app.serve();
}

int cmd_migrate(const std::string& path) {
  auto config = load_or_report(path);
  if (!config) return 2;
  auto db = open_database(config->storage.path, OpenOptions{});
  if (!db) {
    std::cerr << "runsync: " << db.message() << "\n";
    return 1;
  }
  std::cout << config->storage.path << ": schema version " << schema_version(*db.value()) << "\n";
  return 0;
}

int cmd_check_config(const std::string& path) {
  auto config = load_or_report(path);
  if (!config) return 2;
  std::cout << render_config(*config);
  return 0;
}

int cmd_version() {
  std::cout << "runsync " << RUNSYNC_VERSION << "\n"
            << "schema version " << latest_schema_version() << "\n"
            << "sqlite " << sqlite3_libversion() << "\n"
            << "boost " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000 << "."
            << BOOST_VERSION % 100 << "\n"
            << "openssl " << OPENSSL_VERSION_TEXT << "\n"
            << "spdlog " << SPDLOG_VER_MAJOR << "." << SPDLOG_VER_MINOR << "." << SPDLOG_VER_PATCH
            << "\n"
            << "nlohmann_json " << NLOHMANN_JSON_VERSION_MAJOR << "." << NLOHMANN_JSON_VERSION_MINOR
            << "." << NLOHMANN_JSON_VERSION_PATCH << "\n";
  return 0;
}

int cmd_status(const std::string& path, bool as_json) {
  auto config = load_or_report(path);
  if (!config) return 2;
  const std::int64_t now = unix_now();
  auto report = read_mirror_report(config->storage.path, now);
  if (!report) {
    if (as_json) {
      std::cout << nlohmann::json{{"healthy", false}, {"error", report.message()}}.dump(2) << "\n";
    } else {
      std::cerr << "runsync: " << report.message() << "\n";
    }
    return 1;
  }
  const MirrorReport& r = report.value();
  std::vector<std::string> problems;
  if (!config->testrail.url.empty()) {
    const auto stale_after = 3 * std::chrono::duration_cast<std::chrono::seconds>(
                                     config->testrail.poll_interval)
                                     .count() + 60;
    for (const auto& p : config->projects) {
      auto it = std::find_if(r.polls.begin(), r.polls.end(),
                             [&](const PollSummary& s) { return s.project_id == p.id; });
      if (it == r.polls.end()) {
        problems.push_back("project " + std::to_string(p.id) + " has never been polled");
      } else if (it->error) {
        problems.push_back("project " + std::to_string(p.id) + " last poll failed: " + *it->error);
      } else if (!it->last_success_at || now - *it->last_success_at > stale_after) {
        problems.push_back("project " + std::to_string(p.id) + " has not been polled successfully for over " +
                           std::to_string(stale_after) + "s");
      }
    }
  }
  const bool healthy = problems.empty();
  if (as_json) {
    nlohmann::json j;
    j["healthy"] = healthy;
    j["problems"] = problems;
    j["database"] = config->storage.path;
    j["schema_version"] = r.schema_version;
    j["runs_by_state"] = r.runs_by_state;
    j["last_webhook_at"] = r.last_webhook_at ? nlohmann::json(*r.last_webhook_at) : nlohmann::json();
    j["webhook_results_last_hour"] = r.webhook_results_last_hour;
    j["polls"] = nlohmann::json::array();
    for (const auto& p : r.polls) {
      j["polls"].push_back({{"project_id", p.project_id},
                            {"kind", p.kind},
                            {"started_at", p.started_at},
                            {"finished_at", p.finished_at ? nlohmann::json(*p.finished_at) : nlohmann::json()},
                            {"ok", !p.error.has_value()},
                            {"error", p.error ? nlohmann::json(*p.error) : nlohmann::json()},
                            {"last_success_at", p.last_success_at ? nlohmann::json(*p.last_success_at) : nlohmann::json()}});
    }
    j["outbox_by_state"] = r.outbox_by_state;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "database: " << config->storage.path << " (schema " << r.schema_version << ")\n";
    std::cout << "runs:";
    if (r.runs_by_state.empty()) std::cout << " none";
    for (const auto& [state, n] : r.runs_by_state) std::cout << " " << state << "=" << n;
    std::cout << "\nlast webhook: ";
    if (r.last_webhook_at) {
      std::cout << *r.last_webhook_at << " (" << now - *r.last_webhook_at << "s ago)";
    } else {
      std::cout << "never";
    }
    std::cout << "\nwebhooks in the last hour:";
    if (r.webhook_results_last_hour.empty()) std::cout << " none";
    for (const auto& [result, n] : r.webhook_results_last_hour) std::cout << " " << result << "=" << n;
    std::cout << "\n";
    if (config->testrail.url.empty()) std::cout << "polling: off (no testrail.url)\n";
    for (const auto& p : r.polls) {
      std::cout << "project " << p.project_id << ": last " << p.kind << " poll at " << p.started_at
                << (p.error ? " failed: " + *p.error : std::string(" ok")) << "\n";
    }
    std::cout << "outbox:";
    if (r.outbox_by_state.empty()) std::cout << " empty";
    for (const auto& [state, n] : r.outbox_by_state) std::cout << " " << state << "=" << n;
    std::cout << "\nhealth: " << (healthy ? "ok" : "UNHEALTHY") << "\n";
    for (const auto& p : problems) std::cout << "  - " << p << "\n";
  }
  return healthy ? 0 : 1;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"runsync: a SQLite mirror of TestRail runs, fed by webhooks and polling"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("runsync ") + RUNSYNC_VERSION);
  std::string config_path;
  auto add_config = [&](CLI::App* sub) {
    sub->add_option("--config,-c", config_path, "TOML config file (default: embedded defaults)");
  };

  auto* serve = app.add_subcommand("serve", "Run the daemon: webhook listener, poller, write-back");
  add_config(serve);
  auto* migrate = app.add_subcommand("migrate", "Apply pending database migrations and exit");
  add_config(migrate);
  auto* check = app.add_subcommand("check-config", "Validate and print the effective config");
  add_config(check);
  auto* status = app.add_subcommand("status", "Summarise the mirror; non-zero exit when unhealthy");
  add_config(status);
  bool as_json = false;
  status->add_flag("--json", as_json, "Print JSON");
  auto* version = app.add_subcommand("version", "Print versions");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "runsync: " << e.what() << " (see runsync --help)\n";
    return 2;
  }

  if (serve->parsed()) return cmd_serve(config_path);
  if (migrate->parsed()) return cmd_migrate(config_path);
  if (check->parsed()) return cmd_check_config(config_path);
  if (status->parsed()) return cmd_status(config_path, as_json);
  if (version->parsed()) return cmd_version();
  return 2;
}

}  // namespace runsync
