#include "daemon/cli.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <boost/version.hpp>
#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <openssl/opensslv.h>
#include <thread>

#include "daemon/app.h"
#include "daemon/config.h"
#include "daemon/logging.h"
#include "daemon/testrail/poller.h"
#include "daemon/wiring.h"
#include "storage/backup.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "storage/database.h"
#include "core/clock.h"
#include "core/iso_time.h"
#include "storage/outbox.h"
#include "storage/poller_mark.h"
#include "storage/report.h"
#include "storage/write_health.h"

#include <SQLiteCpp/SQLiteCpp.h>

namespace runsync {
namespace {

// Loads the config named by --config (`path`), $RUNSYNC_CONFIG or the
// system file, or prints the error (at error priority under journald);
// nullopt means "exit 2".
std::optional<Config> load_or_report(const std::string& path,
                                     SecretUse use = SecretUse::kNotNeeded) {
  const ConfigEnvironment env = ConfigEnvironment::from_process();
  auto config = load_config(resolve_config_path(path, env), env, use);
  if (!config) {
    std::cerr << (stderr_is_journal() ? "<3>" : "") << "runsync: " << config.message() << "\n";
    return std::nullopt;
  }
  return std::move(config).value();
}

int cmd_serve(const std::string& path) {
  auto config = load_or_report(path, SecretUse::kRequired);
  if (!config) return 2;
  Logger logger = logger_for(*config);
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

int cmd_sync(const std::string& path, bool full) {
  auto config = load_or_report(path, SecretUse::kRequired);
  if (!config) return 2;
  if (config->testrail.url.empty()) {
    std::cerr << "runsync: sync needs testrail.url (and user, API key, [[project]]) in the config\n";
    return 2;
  }
  Logger logger = logger_for(*config);
  auto store = Store::open(config->storage.path, open_options_for(*config));
  if (!store) {
    std::cerr << "runsync: " << store.message() << "\n";
    return 1;
  }
  auto mark = PollerMark::hold(config->storage.path);
  if (!mark) logger->warn("{}; `runsync status` will call this cycle interrupted", mark.message());
  Writer writer(std::move(store).value(), Writer::Options{});
  Metrics metrics;
  auto client = TestRailClient::create(client_options_for(*config), real_clock(),
                                       make_api_observer(metrics, logger));
  Poller poller(poller_options_for(*config), *client, writer, metrics, logger, real_clock());
  int failed = 0;
  for (const auto& project : config->projects) {
    const CycleOutcome out = poller.run_cycle(project, full ? PollKind::kFull : PollKind::kActive);
    if (out.error) ++failed;
  }
  writer.stop();
  return failed == 0 ? 0 : 1;
}

struct RunArgs {
  std::int64_t project = 0;
  std::int64_t suite = 0;
  std::int64_t run = 0;
  std::string name, description, refs;
  std::int64_t milestone = 0, assignedto = 0;
  std::vector<std::int64_t> cases, config_ids;
  bool wait = false;
  std::string timeout = "60s";
};

// The command the options of `run add/update/close/delete` describe.
OutboxCommand command_from(CommandKind kind, const RunArgs& a, CLI::App& sub) {
  OutboxCommand c;
  c.kind = kind;
  auto given = [&](const char* opt) {
    const CLI::Option* o = sub.get_option_no_throw(opt);
    return o != nullptr && o->count() > 0;
  };
  if (kind == CommandKind::kAddRun) {
    c.target = a.project;
    if (given("--suite")) c.body["suite_id"] = a.suite;
    c.body["name"] = a.name;
  } else {
    c.target = a.run;
    if (given("--name")) c.body["name"] = a.name;
  }
  if (given("--description")) c.body["description"] = a.description;
  if (given("--milestone")) c.body["milestone_id"] = a.milestone;
  if (given("--assignedto")) c.body["assignedto_id"] = a.assignedto;
  if (given("--refs")) c.body["refs"] = a.refs;
  if (given("--case")) {
    c.body["include_all"] = false;
    c.body["case_ids"] = a.cases;
  }
  if (given("--config-id")) c.body["config_ids"] = a.config_ids;
  return c;
}

// Polls outbox row `id` until it ends or `timeout` passes on `clock`;
// prints the outcome. Exit codes as cmd_run's.
int wait_for_outcome(const std::string& database, std::int64_t id, const OutboxCommand& c,
                     std::chrono::milliseconds timeout, const std::string& timeout_text,
                     const Clock& clock) {
  const std::atomic<bool> never_stopped{false};
  const auto deadline = clock.now() + timeout;
  for (;;) {
    auto row = read_command(database, id);
    if (!row) {
      std::cerr << "runsync: " << row.message() << "\n";
      return 1;
    }
    if (row.value()) {
      const CommandStatus& st = *row.value();
      if (st.state == CommandState::kDone) {
        std::cout << st.result.value_or("{}") << "\n";
        return 0;
      }
      if (st.state == CommandState::kFailed) {
        std::cerr << "runsync: outbox #" << id << " " << command_uri(c)
                  << " failed: " << st.last_error.value_or("(no error text)") << "\n";
        return 1;
      }
      if (st.state == CommandState::kUnknown) {
        std::cerr << "runsync: outbox #" << id << " " << command_uri(c)
                  << ": outcome unknown: " << st.last_error.value_or("") << "\n";
        return 3;
      }
    }
    if (clock.now() >= deadline) {
      std::cerr << "runsync: outbox #" << id << " still pending after " << timeout_text
                << " (is `runsync serve` running?); it stays queued\n";
      return 4;
    }
    clock.sleep_until(clock.now() + std::chrono::milliseconds(100), never_stopped);
  }
}

// Queues one write-back command; with --wait, waits for and prints its
// outcome. Exit codes: 0 queued/done, 1 failed, 2 refused, 3 unknown
// outcome, 4 still pending when the wait ended.
int cmd_run(const std::string& path, CommandKind kind, const RunArgs& a, CLI::App& sub) {
  auto config = load_or_report(path);
  if (!config) return 2;
  const OutboxCommand c = command_from(kind, a, sub);
  const auto timeout = parse_duration(a.timeout);
  if (!timeout) {
    std::cerr << "runsync: --timeout: invalid duration '" << a.timeout << "' (use e.g. 30s, 5m)\n";
    return 2;
  }
  std::vector<std::int64_t> projects;
  for (const ProjectConfig& p : config->projects) projects.push_back(p.id);
  // The same refusals as the worker makes before sending (check_command):
  // first what the command and the config tell, then what the mirror knows.
  if (Status v = check_command(c, {projects, nullptr}); !v.is_ok()) {
    std::cerr << "runsync: " << v.message() << "; nothing queued\n";
    return 2;
  }
  if (config->testrail.url.empty()) {
    std::cerr << "runsync: write-back needs testrail.url in the config; nothing queued\n";
    return 2;
  }
  auto store = Store::open(config->storage.path, OpenOptions{});
  if (!store) {
    std::cerr << "runsync: " << store.message() << "\n";
    return 1;
  }
  if (kind != CommandKind::kAddRun) {
    auto known = store.value()->runs().load(a.run);
    if (known && known.value()) {
      if (Status v = check_command(c, {projects, &*known.value()}); !v.is_ok()) {
        std::cerr << "runsync: " << v.message() << "; nothing queued\n";
        return 2;
      }
    }
  }
  std::int64_t id = 0;
  Status queued = store.value()->begin();
  if (queued.is_ok()) {
    auto r = store.value()->outbox().queue(c, real_clock().unix_seconds());
    queued = r.is_ok() ? store.value()->commit() : r.status();
    if (r.is_ok()) id = r.value();
  }
  if (!queued.is_ok()) {
    store.value()->rollback();
    std::cerr << "runsync: " << queued.message() << "; nothing queued\n";
    return 1;
  }
  store.value().reset();
  if (!a.wait) {
    std::cout << "queued outbox #" << id << " (" << command_uri(c) << ")\n";
    return 0;
  }
  return wait_for_outcome(config->storage.path, id, c, *timeout, a.timeout, real_clock());
}

int cmd_backup(const std::string& path, const std::string& file) {
  auto config = load_or_report(path);
  if (!config) return 2;
  auto info = backup_database(config->storage.path, file);
  if (!info) {
    std::cerr << "runsync: backup: " << info.message() << "\n";
    return 1;
  }
  std::cout << "backed up " << config->storage.path << " to " << file << " (" << info->bytes
            << " bytes, schema version " << info->schema_version << ", integrity ok)\n";
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

// "2026-12-03T08:00:00Z (42s ago)".
std::string ago(std::int64_t at, std::int64_t now) {
  return iso_utc(at) + " (" + std::to_string(now - at) + "s ago)";
}

nlohmann::json time_json(const std::optional<std::int64_t>& at) {
  return at ? nlohmann::json(*at) : nlohmann::json();
}

nlohmann::json iso_json(const std::optional<std::int64_t>& at) {
  return at ? nlohmann::json(iso_utc(*at)) : nlohmann::json();
}

// What makes the mirror unhealthy (SPEC §2: status exits non-zero).
std::vector<std::string> status_problems(const Config& config, const MirrorReport& r,
                                         const std::optional<WriteFailure>& write_failure,
                                         std::int64_t now) {
  std::vector<std::string> problems;
  if (Status room = check_room_to_write(config.storage.path); !room.is_ok()) {
    problems.push_back("the database cannot take writes: " + room.message());
  }
  if (write_failure) {
    problems.push_back("the database stopped taking writes since " +
                       ago(write_failure->since, now) + ": " + write_failure->error);
  }
  if (config.testrail.url.empty()) return problems;
  for (const auto& p : config.projects) {
    auto it = std::find_if(r.polls.begin(), r.polls.end(),
                           [&](const PollSummary& s) { return s.project_id == p.id; });
    PollRecord record;
    if (it != r.polls.end()) {
      record.polled = true;
      if (it->state == CycleState::kFailed) record.last_error = it->error.value_or("");
      record.last_success_at = it->last_success_at;
    }
    if (auto problem = poll_problem(p.id, record, now, config.testrail.poll_interval)) {
      problems.push_back(std::move(*problem));
    }
  }
  return problems;
}

void print_status_json(const Config& config, const MirrorReport& r,
                       const std::optional<WriteFailure>& write_failure,
                       const std::vector<std::string>& problems) {
  nlohmann::json j;
  j["healthy"] = problems.empty();
  j["problems"] = problems;
  j["database"] = config.storage.path;
  j["schema_version"] = r.schema_version;
  j["runs_by_state"] = r.runs_by_state;
  j["last_webhook_at"] = time_json(r.last_webhook_at);
  j["last_webhook_at_iso"] = iso_json(r.last_webhook_at);
  j["webhook_results_last_hour"] = r.webhook_results_last_hour;
  j["polls"] = nlohmann::json::array();
  for (const auto& p : r.polls) {
    j["polls"].push_back({{"project_id", p.project_id},
                          {"kind", p.kind},
                          {"state", cycle_state_name(p.state)},
                          {"ok", p.state == CycleState::kOk},
                          {"started_at", p.started_at},
                          {"started_at_iso", iso_utc(p.started_at)},
                          {"finished_at", time_json(p.finished_at)},
                          {"finished_at_iso", iso_json(p.finished_at)},
                          {"error", p.error ? nlohmann::json(*p.error) : nlohmann::json()},
                          {"last_success_at", time_json(p.last_success_at)},
                          {"last_success_at_iso", iso_json(p.last_success_at)}});
  }
  j["outbox_by_state"] = r.outbox_by_state;
  j["outbox_oldest_pending_at"] = time_json(r.oldest_pending_at);
  j["outbox_oldest_pending_at_iso"] = iso_json(r.oldest_pending_at);
  j["database_file_bytes"] = r.file_bytes;
  j["database_free_bytes"] = r.free_bytes;
  j["wal_file_bytes"] = r.wal_bytes;
  const auto since = write_failure ? std::optional(write_failure->since) : std::nullopt;
  j["write_error"] = write_failure ? nlohmann::json(write_failure->error) : nlohmann::json();
  j["write_error_since"] = time_json(since);
  j["write_error_since_iso"] = iso_json(since);
  j["oldest_webhook_at"] = time_json(r.oldest_webhook_at);
  j["oldest_webhook_at_iso"] = iso_json(r.oldest_webhook_at);
  const std::optional<std::int64_t> oldest_hint =
      r.oldest_pending_refresh_at_ms
          ? std::optional<std::int64_t>(*r.oldest_pending_refresh_at_ms / 1000)
          : std::nullopt;
  j["pending_refreshes"] = r.pending_refreshes;
  j["oldest_pending_refresh_at"] = time_json(oldest_hint);
  j["oldest_pending_refresh_at_iso"] = iso_json(oldest_hint);
  std::cout << j.dump(2) << "\n";
}

// One line per project's last poll cycle.
void print_polls_text(const Config& config, const MirrorReport& r, std::int64_t now) {
  if (config.testrail.url.empty()) std::cout << "polling: off (no testrail.url)\n";
  for (const auto& p : r.polls) {
    std::cout << "project " << p.project_id << ": last " << p.kind << " poll started "
              << ago(p.started_at, now) << ": ";
    switch (p.state) {
      case CycleState::kOk:
        std::cout << "ok, finished " << iso_utc(*p.finished_at);
        break;
      case CycleState::kFailed:
        std::cout << "FAILED: " << *p.error;
        break;
      case CycleState::kRunning:
        std::cout << "running";
        break;
      case CycleState::kInterrupted:
        std::cout << "interrupted (runsync stopped before it finished)";
        break;
    }
    if (p.state != CycleState::kOk) {
      std::cout << "; last success: "
                << (p.last_success_at ? ago(*p.last_success_at, now) : std::string("never"));
    }
    std::cout << "\n";
  }
}

void print_status_text(const Config& config, const MirrorReport& r,
                       const std::optional<WriteFailure>& write_failure,
                       const std::vector<std::string>& problems, std::int64_t now) {
  std::cout << "database: " << config.storage.path << " (schema " << r.schema_version << ")\n";
  std::cout << "database file: " << r.file_bytes << " bytes, " << r.free_bytes
            << " of them free pages (reused before the file grows); WAL file: " << r.wal_bytes
            << " bytes\n";
  std::cout << "database writes: "
            << (write_failure ? "FAILING since " + ago(write_failure->since, now) + ": " +
                                    write_failure->error
                              : std::string("no failure reported"))
            << "\n";
  std::cout << "oldest webhook kept: "
            << (r.oldest_webhook_at ? ago(*r.oldest_webhook_at, now) : std::string("none"))
            << "\n";
  std::cout << "runs:";
  if (r.runs_by_state.empty()) std::cout << " none";
  for (const auto& [state, n] : r.runs_by_state) std::cout << " " << state << "=" << n;
  std::cout << "\nlast webhook: "
            << (r.last_webhook_at ? ago(*r.last_webhook_at, now) : std::string("never"));
  std::cout << "\nwebhooks in the last hour:";
  if (r.webhook_results_last_hour.empty()) std::cout << " none";
  for (const auto& [result, n] : r.webhook_results_last_hour) std::cout << " " << result << "=" << n;
  std::cout << "\n";
  print_polls_text(config, r, now);
  std::cout << "outbox:";
  if (r.outbox_by_state.empty()) std::cout << " empty";
  for (const auto& [state, n] : r.outbox_by_state) std::cout << " " << state << "=" << n;
  if (r.oldest_pending_at) std::cout << "; oldest pending since " << ago(*r.oldest_pending_at, now);
  std::cout << "\npending refreshes (TestRail webhook hints): " << r.pending_refreshes;
  if (r.oldest_pending_refresh_at_ms) {
    std::cout << "; oldest hint " << ago(*r.oldest_pending_refresh_at_ms / 1000, now);
  }
  std::cout << "\nhealth: " << (problems.empty() ? "ok" : "UNHEALTHY") << "\n";
  for (const auto& p : problems) std::cout << "  - " << p << "\n";
}

int cmd_status(const std::string& path, bool as_json) {
  auto config = load_or_report(path);
  if (!config) return 2;
  const std::int64_t now = real_clock().unix_seconds();
  auto report = read_mirror_report(config->storage.path, now);
  if (!report) {
    if (as_json) {
      std::cout << nlohmann::json{{"healthy", false}, {"error", report.message()}}.dump(2) << "\n";
    } else {
      std::cerr << "runsync: " << report.message() << "\n";
    }
    return 1;
  }
  const std::optional<WriteFailure> write_failure = read_write_failure(config->storage.path);
  const auto problems = status_problems(*config, report.value(), write_failure, now);
  if (as_json) {
    print_status_json(*config, report.value(), write_failure, problems);
  } else {
    print_status_text(*config, report.value(), write_failure, problems, now);
  }
  return problems.empty() ? 0 : 1;
}

// What the command line holds once parsed: the options' values, and the
// subcommands to ask which one was given.
struct CommandLine {
  std::string config_path;
  bool as_json = false;
  std::string backup_file;
  bool full = false;
  RunArgs run;
  CLI::App* serve = nullptr;
  CLI::App* migrate = nullptr;
  CLI::App* check = nullptr;
  CLI::App* status = nullptr;
  CLI::App* backup = nullptr;
  CLI::App* sync = nullptr;
  CLI::App* run_add = nullptr;
  CLI::App* run_update = nullptr;
  CLI::App* run_close = nullptr;
  CLI::App* run_delete = nullptr;
  CLI::App* version = nullptr;

  void add_config(CLI::App* sub) {
    sub->add_option("--config,-c", config_path,
                    "TOML config file (default: $RUNSYNC_CONFIG, else /etc/runsync/runsync.toml "
                    "when it exists, else embedded defaults)");
  }
};

// serve, migrate, check-config, status, backup and sync, in the order --help
// lists them.
void add_process_commands(CLI::App& app, CommandLine& cl) {
  cl.serve = app.add_subcommand("serve", "Run the daemon: webhook listener, poller, write-back");
  cl.add_config(cl.serve);
  cl.migrate = app.add_subcommand("migrate", "Apply pending database migrations and exit");
  cl.add_config(cl.migrate);
  cl.check = app.add_subcommand("check-config", "Validate and print the effective config");
  cl.add_config(cl.check);
  cl.status = app.add_subcommand("status", "Summarise the mirror; non-zero exit when unhealthy");
  cl.add_config(cl.status);
  cl.status->add_flag("--json", cl.as_json, "Print JSON");
  cl.backup = app.add_subcommand("backup", "Write a consistent copy of the database to FILE");
  cl.add_config(cl.backup);
  cl.backup->add_option("FILE", cl.backup_file, "Where to write the copy (must not exist)")
      ->required();
  cl.sync = app.add_subcommand("sync", "Run one poll cycle for every project, then exit");
  cl.add_config(cl.sync);
  cl.sync->add_flag("--full", cl.full,
                    "Fetch every run, completed ones too (default: active runs)");
}

// `run add`, `run update`, `run close` and `run delete`.
void add_run_commands(CLI::App& app, CommandLine& cl) {
  auto* run =
      app.add_subcommand("run", "Queue a write-back command (add, update, close, delete a run)");
  run->require_subcommand(1);
  RunArgs& ra = cl.run;
  auto common = [&](CLI::App* sub) {
    cl.add_config(sub);
    sub->add_flag("--wait", ra.wait, "Wait for the outcome and print it");
    sub->add_option("--timeout", ra.timeout, "How long --wait waits (default 60s)");
  };
  auto fields = [&](CLI::App* sub) {
    sub->add_option("--description", ra.description, "Run description");
    sub->add_option("--milestone", ra.milestone, "Milestone id")->check(CLI::PositiveNumber);
    sub->add_option("--assignedto", ra.assignedto, "User id to assign the run to")
        ->check(CLI::PositiveNumber);
    sub->add_option("--case", ra.cases, "Case id to include (repeatable; default: all cases)")
        ->check(CLI::PositiveNumber);
    sub->add_option("--refs", ra.refs, "Comma-separated references");
  };
  auto run_id = [&](CLI::App* sub) {
    sub->add_option("RUN", ra.run, "Run id")->required()->check(CLI::PositiveNumber);
  };
  cl.run_add = run->add_subcommand("add", "Queue add_run");
  common(cl.run_add);
  cl.run_add->add_option("--project", ra.project, "TestRail project id")
      ->required()
      ->check(CLI::PositiveNumber);
  cl.run_add->add_option("--suite", ra.suite, "Test suite id")->check(CLI::PositiveNumber);
  cl.run_add->add_option("--name", ra.name, "Run name")->required();
  cl.run_add->add_option("--config-id", ra.config_ids, "Configuration id (repeatable)")
      ->check(CLI::PositiveNumber);
  fields(cl.run_add);
  cl.run_update = run->add_subcommand("update", "Queue update_run");
  common(cl.run_update);
  run_id(cl.run_update);
  cl.run_update->add_option("--name", ra.name, "New name");
  fields(cl.run_update);
  cl.run_close = run->add_subcommand("close", "Queue close_run (irreversible)");
  common(cl.run_close);
  run_id(cl.run_close);
  cl.run_delete = run->add_subcommand("delete", "Queue delete_run (irreversible)");
  common(cl.run_delete);
  run_id(cl.run_delete);
}

// Runs the subcommand that was given; returns the exit code.
int run_command(const CommandLine& cl) {
  const std::string& path = cl.config_path;
  const RunArgs& ra = cl.run;
  if (cl.serve->parsed()) return cmd_serve(path);
  if (cl.migrate->parsed()) return cmd_migrate(path);
  if (cl.check->parsed()) return cmd_check_config(path);
  if (cl.status->parsed()) return cmd_status(path, cl.as_json);
  if (cl.sync->parsed()) return cmd_sync(path, cl.full);
  if (cl.backup->parsed()) return cmd_backup(path, cl.backup_file);
  if (cl.run_add->parsed()) return cmd_run(path, CommandKind::kAddRun, ra, *cl.run_add);
  if (cl.run_update->parsed()) return cmd_run(path, CommandKind::kUpdateRun, ra, *cl.run_update);
  if (cl.run_close->parsed()) return cmd_run(path, CommandKind::kCloseRun, ra, *cl.run_close);
  if (cl.run_delete->parsed()) return cmd_run(path, CommandKind::kDeleteRun, ra, *cl.run_delete);
  if (cl.version->parsed()) return cmd_version();
  return 2;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"runsync: a SQLite mirror of TestRail runs, fed by webhooks and polling"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("runsync ") + RUNSYNC_VERSION);
  CommandLine cl;
  add_process_commands(app, cl);
  add_run_commands(app, cl);
  cl.version = app.add_subcommand("version", "Print versions");

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
  return run_command(cl);
}

}  // namespace runsync
