// Growth benchmark: does runsync's speed depend on its history? Bulk-loads
// months of a busy organisation straight into a database file (journal
// rows with random 64-hex delivery keys and realistic bodies, runs, change
// log), then runs the real `runsync serve` on it and measures durable
// ingest (events/s and latency of 200 answers, closed loop over keep-alive
// connections) against the same daemon on an empty database, in the same
// invocation. Then times a full poll (`runsync sync --full`) of many runs
// from the fake TestRail server on both databases and counts its requests.
//
// "history" lies inside the default retention window (the last 29 days),
// so the pruner deletes nothing while measuring: that row measures size
// alone. "aged" is the same amount spread over 90 days: the daemon's
// retention deletes two thirds of it before the load starts, and new rows
// then go into the freed pages.
//
// Performance is reported, never asserted; the exit status is non-zero
// only when something went wrong (a daemon that did not start or stop
// cleanly, answers other than 200, a failed sync).
//
// Usage: runsync_growth_bench [--quick] [--history N] [--connections 32]
//          [--seconds 8] [--warmup 2] [--poll-runs 100000] [--dir DIR]
//          [--binary PATH] [--keep]
// See bench/README.md.

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/event_stream.h"
#include "bench/support/fsync_probe.h"
#include "bench/support/machine.h"
#include "bench/support/serve.h"
#include "bench/support/stats.h"

#ifndef RUNSYNC_BINARY
#define RUNSYNC_BINARY "runsync"
#endif

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using runsync::bench::EventStream;
using runsync::bench::metric_value;
using runsync::bench::percentile_of_sorted;

struct Options {
  std::int64_t history = 2'000'000;  // journal rows
  int connections = 32;
  double seconds = 8;
  double warmup = 2;
  int poll_runs = 100'000;
  int rounds = 1;
  bool quick = false;
  bool keep = false;
  std::string dir;
  std::string binary = RUNSYNC_BINARY;
};

constexpr const char* kUsage =
    "[options]\n"
    "  --history N       journal rows bulk-loaded (default 2000000); plus N/2\n"
    "                    change-log rows and N/6 runs\n"
    "  --connections N   closed-loop keep-alive connections (default 32)\n"
    "  --seconds S       measured seconds per row (default 8)\n"
    "  --warmup S        warm-up seconds before measuring (default 2)\n"
    "  --poll-runs N     runs in the fake TestRail's full poll (default 100000)\n"
    "  --rounds N        ingest rows on every database N times, interleaved\n"
    "                    (default 1); later rounds write on top of earlier ones\n"
    "  --dir DIR         where the databases go (default $TMPDIR or /tmp)\n"
    "  --binary PATH     runsync binary (default the built one)\n"
    "  --keep            keep the databases\n"
    "  --quick           200000 history rows, 3 s rows, 20000 polled runs\n";

Options parse_options(int argc, char** argv) {
  Options o;
  bool history_set = false, seconds_set = false, warmup_set = false, poll_set = false;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--history")) {
      o.history = static_cast<std::int64_t>(args.number(0));
      history_set = true;
    } else if (args.is("--connections")) {
      o.connections = std::max(1, static_cast<int>(args.number(0)));
    } else if (args.is("--seconds")) {
      o.seconds = std::max(0.5, args.number(0));
      seconds_set = true;
    } else if (args.is("--warmup")) {
      o.warmup = args.number(0);
      warmup_set = true;
    } else if (args.is("--poll-runs")) {
      o.poll_runs = static_cast<int>(args.number(0));
      poll_set = true;
    } else if (args.is("--rounds")) {
      o.rounds = std::max(1, static_cast<int>(args.number(0)));
    } else if (args.is("--dir")) {
      o.dir = args.text();
    } else if (args.is("--binary")) {
      o.binary = args.text();
    } else if (args.is("--keep")) {
      o.keep = true;
    } else if (args.is("--quick")) {
      o.quick = true;
    } else {
      args.unknown();
    }
  }
  if (o.quick) {
    if (!history_set) o.history = 200'000;
    if (!seconds_set) o.seconds = 3;
    if (!warmup_set) o.warmup = 1;
    if (!poll_set) o.poll_runs = 20'000;
  }
  if (o.dir.empty()) o.dir = runsync::bench::default_temp_dir();
  return o;
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void check(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return;
  std::fprintf(stderr, "error: %s: %s\n", what, sqlite3_errmsg(db));
  std::exit(1);
}

// Runs `sql` and returns the first column of its first row (0 when none).
std::int64_t scalar(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  check(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), db, sql);
  std::int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  return v;
}

// Appends `history` journal rows (received over the `days` days before `now`),
// history/2 change-log rows and history/6 runs to the migrated database at
// `path`. Run ids start at 10^9, clear of the live stream's (from 1) and
// the fake server's (from 2*10^9); the runs
// belong to project 2, which the full poll (of project 1) does not list.
void bulk_load(const std::string& path, std::int64_t history, std::int64_t now, int days) {
  sqlite3* db = nullptr;
  check(sqlite3_open(path.c_str(), &db), db, "open");
  sqlite3_exec(db, "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144", nullptr, nullptr,
               nullptr);
  sqlite3_stmt *event = nullptr, *change = nullptr, *run = nullptr;
  check(sqlite3_prepare_v2(db,
                           "INSERT INTO webhook_events (received_at, delivery_key, event_name, "
                           "project_code, run_id, event_ts, body, result) "
                           "VALUES (?, ?, ?, 'OLD', ?, ?, ?, 'applied')",
                           -1, &event, nullptr),
        db, "prepare journal insert");
  check(sqlite3_prepare_v2(db,
                           "INSERT INTO run_changes (run_id, changed_at, source, changes) "
                           "VALUES (?, ?, 'webhook', ?)",
                           -1, &change, nullptr),
        db, "prepare change insert");
  check(sqlite3_prepare_v2(db,
                           "INSERT INTO runs (run_id, project_id, project_code, name, state, "
                           "is_completed, cases_count, passed_count, failed_count, updated_at, "
                           "change_seq) VALUES (?, 2, 'OLD', ?, 'completed', 1, 100, ?, ?, ?, ?)",
                           -1, &run, nullptr),
        db, "prepare run insert");
  const std::int64_t kWindow = std::int64_t{days} * 86400;
  const std::int64_t start = now - kWindow;
  EventStream bodies(10000, 6, start);
  std::string body;
  const auto t0 = Clock::now();
  check(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), db, "begin");
  for (std::int64_t k = 0; k < history; ++k) {
    const std::int64_t at = start + k * kWindow / std::max<std::int64_t>(1, history);
    const std::int64_t run_id = 1'000'000'000 + k / 6;
    bodies.next(body);
    const std::string key = runsync::bench::delivery_key(static_cast<std::uint64_t>(k));
    const char* name = k % 6 == 0 ? "run.started" : k % 6 == 5 ? "run.completed" : "run.updated";
    sqlite3_bind_int64(event, 1, at);
    sqlite3_bind_text(event, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_text(event, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(event, 4, run_id);
    sqlite3_bind_int64(event, 5, at);
    sqlite3_bind_text(event, 6, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
    check(sqlite3_step(event), db, "journal insert");
    sqlite3_reset(event);
    if (k % 2 == 0) {
      const std::string changes =
          "{\"passed_count\":[" + std::to_string(k % 97) + "," + std::to_string(k % 97 + 1) + "]}";
      sqlite3_bind_int64(change, 1, run_id);
      sqlite3_bind_int64(change, 2, at);
      sqlite3_bind_text(change, 3, changes.data(), static_cast<int>(changes.size()), SQLITE_STATIC);
      check(sqlite3_step(change), db, "change insert");
      sqlite3_reset(change);
    }
    if (k % 6 == 5) {
      const std::string run_name = "Nightly regression " + std::to_string(run_id);
      sqlite3_bind_int64(run, 1, run_id);
      sqlite3_bind_text(run, 2, run_name.data(), static_cast<int>(run_name.size()), SQLITE_STATIC);
      sqlite3_bind_int64(run, 3, k % 90);
      sqlite3_bind_int64(run, 4, k % 10);
      sqlite3_bind_int64(run, 5, at);
      sqlite3_bind_int64(run, 6, sqlite3_last_insert_rowid(db));
      check(sqlite3_step(run), db, "run insert");
      sqlite3_reset(run);
    }
    if (k % 100'000 == 99'999) {
      check(sqlite3_exec(db, "COMMIT; BEGIN", nullptr, nullptr, nullptr), db, "commit");
      std::fprintf(stderr, "\r  bulk load: %" PRId64 " of %" PRId64 " journal rows, %.0f s", k + 1,
                   history, since(t0));
    }
  }
  check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
  sqlite3_finalize(event);
  sqlite3_finalize(change);
  sqlite3_finalize(run);
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  std::fprintf(stderr, "\r  bulk load: %" PRId64 " journal rows in %.0f s\n", history, since(t0));
}

struct DbFacts {
  std::int64_t journal = 0, changes = 0, runs = 0;
  double file_mib = 0, free_mib = 0, wal_mib = 0;
};

DbFacts facts(const std::string& path) {
  DbFacts f;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    f.journal = scalar(db, "SELECT count(*) FROM webhook_events");
    f.changes = scalar(db, "SELECT count(*) FROM run_changes");
    f.runs = scalar(db, "SELECT count(*) FROM runs");
    f.free_mib =
        static_cast<double>(scalar(db, "PRAGMA freelist_count") * scalar(db, "PRAGMA page_size")) /
        (1024.0 * 1024.0);
  }
  sqlite3_close(db);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  f.file_mib = ec ? 0 : static_cast<double>(size) / (1024.0 * 1024.0);
  const auto wal = fs::file_size(path + "-wal", ec);
  f.wal_mib = ec ? 0 : static_cast<double>(wal) / (1024.0 * 1024.0);
  return f;
}

struct IngestResult {
  bool ok = false;
  double prune_seconds = -1;  // from the daemon's start until no row was past the window
  DbFacts at_start;           // the database when the load started
  std::string problem;
  double events_per_s = 0, p50 = 0, p99 = 0, max = 0;
  double commit_ms = 0, batch = 0;  // the daemon's average commit time and events per commit
  double fsync_before = -1, fsync_after = -1;  // ms (p50) of a 4 KiB append + fdatasync
  std::uint64_t non_200 = 0;
};

// Starts `runsync serve` on `db`, sends unique events from `connections`
// keep-alive connections for warm-up + measured seconds, stops it.
// With `wait_for_retention`, first waits (up to 15 min) until the daemon's
// retention has deleted every journal row past the default 30-day window.
IngestResult ingest(const Options& opt, const fs::path& dir, const std::string& db,
                    bool wait_for_retention) {
  IngestResult out;
  const std::string config = (dir / "serve.toml").string();
  std::ofstream(config) << "[storage]\npath = \"" << db
                        << "\"\n[webhook]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"info\"\n";
  // A fresh log: the port and the retention line are read from it.
  std::error_code removed;
  fs::remove(dir / "serve.log", removed);
  runsync::testing::ChildProcess daemon({opt.binary, "serve", "--config", config},
                                        (dir / "serve.log").string(), {},
                                        {"NOTIFY_SOCKET", "WATCHDOG_USEC"});
  const auto started = Clock::now();
  const unsigned short port = runsync::testing::wait_for_listen_port(daemon);
  if (port == 0) {
    out.problem = "the daemon did not start: " + daemon.log();
    return out;
  }
  if (wait_for_retention) {
    // The first round's log line, not a query: a reader polling the file
    // would keep the checkpoints from restarting the WAL meanwhile.
    const bool pruned = runsync::testing::wait_until(
        [&] { return daemon.log().find("retention: deleted ") != std::string::npos; },
        std::chrono::minutes(15));
    if (!pruned) {
      out.problem = "retention did not delete the rows past the window within 15 min";
      return out;
    }
    out.prune_seconds = since(started);
  }
  out.at_start = facts(db);
  EventStream events(10000, 6, std::time(nullptr));
  std::mutex events_mu;
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<std::uint64_t> non_200{0};
  std::vector<std::vector<std::uint32_t>> latencies(static_cast<std::size_t>(opt.connections));
  std::vector<std::thread> threads;
  for (int c = 0; c < opt.connections; ++c) {
    threads.emplace_back([&, c] {
      runsync::testing::TestHttpClient client(port);
      std::string body;
      while (!stop) {
        {
          std::lock_guard lock(events_mu);
          events.next(body);
        }
        const auto t0 = Clock::now();
        const auto r = client.post("/webhook", body);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
        if (r.status != 200) {
          ++non_200;
          if (r.status == 0) return;
          continue;
        }
        if (measuring)
          latencies[static_cast<std::size_t>(c)].push_back(static_cast<std::uint32_t>(us.count()));
      }
    });
  }
  runsync::testing::TestHttpClient metrics(port);
  std::this_thread::sleep_for(std::chrono::duration<double>(opt.warmup));  // the warm-up itself
  out.fsync_before = runsync::bench::probe_fsync(dir, 50, 0.3).first;
  const std::string before = metrics.get("/metrics").body;
  measuring = true;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(opt.seconds));  // the window itself
  measuring = false;
  const double window = since(t0);
  const std::string after = metrics.get("/metrics").body;
  out.fsync_after = runsync::bench::probe_fsync(dir, 50, 0.3).first;
  stop = true;
  for (auto& t : threads) t.join();
  const bool stopped = runsync::bench::stop(daemon, std::chrono::seconds(15));
  std::vector<std::uint32_t> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  out.events_per_s = static_cast<double>(all.size()) / window;
  out.p50 = percentile_of_sorted(all, 0.50) / 1000.0;
  out.p99 = percentile_of_sorted(all, 0.99) / 1000.0;
  out.max = all.empty() ? 0 : all.back() / 1000.0;
  const double commits = metric_value(after, "runsync_db_commits_total") -
                         metric_value(before, "runsync_db_commits_total");
  const double jobs = metric_value(after, "runsync_db_committed_jobs_total") -
                      metric_value(before, "runsync_db_committed_jobs_total");
  const double commit_s = metric_value(after, "runsync_db_commit_seconds_sum") -
                          metric_value(before, "runsync_db_commit_seconds_sum");
  out.commit_ms = commits > 0 ? commit_s / commits * 1000 : 0;
  out.batch = commits > 0 ? jobs / commits : 0;
  out.non_200 = non_200;
  if (!stopped) {
    out.problem = "the daemon did not exit 0 within 15 s of SIGTERM";
  } else if (out.non_200 > 0) {
    out.problem = std::to_string(out.non_200) + " answers other than 200";
  } else {
    out.ok = true;
  }
  return out;
}

struct PollResult {
  bool ok = false;
  double seconds = 0;
  std::size_t requests = 0;
  std::int64_t runs = 0;
};

// `runsync sync --full` of the fake server's runs into `db`.
PollResult full_poll(const Options& opt, const fs::path& dir, const std::string& db,
                     runsync::test::FakeTestRail& fake) {
  PollResult out;
  const std::string config = (dir / "sync.toml").string();
  std::ofstream(config) << runsync::bench::full_sync_config(db, fake.base_url());
  fake.clear_requests();
  const auto t0 = Clock::now();
  const auto r = runsync::testing::run_command({opt.binary, "sync", "--full", "--config", config},
                                               {runsync::bench::kSyncEnv});
  out.seconds = since(t0);
  out.requests = fake.request_count();
  out.ok = r.exit_code == 0;
  if (!out.ok) std::fprintf(stderr, "sync failed (%d): %s\n", r.exit_code, r.err.c_str());
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    out.runs = scalar(h, "SELECT count(*) FROM runs WHERE run_id >= 2000000000");
  }
  sqlite3_close(h);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  if (!runsync::bench::binary_is_executable(opt.binary)) return 2;
  const std::string made = runsync::bench::make_temp_dir(opt.dir, "runsync-growth-");
  if (made.empty()) return 2;
  const fs::path root = made;
  const fs::path empty_dir = root / "empty", history_dir = root / "history";
  fs::create_directories(empty_dir);
  fs::create_directories(history_dir);
  const std::string empty_db = (empty_dir / "runsync.db").string();
  const std::string history_db = (history_dir / "runsync.db").string();
  // The same history spread over 90 days: retention (30 days) deletes about
  // two thirds of it before the load starts.
  const fs::path aged_dir = root / "aged";
  fs::create_directories(aged_dir);
  const std::string aged_db = (aged_dir / "runsync.db").string();

  const runsync::bench::Machine host = runsync::bench::machine();
  std::printf("runsync growth benchmark\n");
  std::printf("  date        %s; %u CPUs, load avg %.2f before the run\n",
              runsync::bench::utc_now_text().c_str(), host.cpus, host.load[0]);
  std::printf("  binary      %s\n", opt.binary.c_str());
  std::printf("  databases   %s: empty; history, bulk-loaded with sqlite3: %" PRId64
              " journal rows with random 64-hex delivery keys over the last 29 days, %" PRId64
              " change-log rows, %" PRId64 " runs; aged, the same over 90 days\n",
              root.c_str(), opt.history, (opt.history + 1) / 2, opt.history / 6);
  std::printf(
      "  ingest      `runsync serve`, sync=full, %d keep-alive connections, closed loop, "
      "%.1f s warm-up + %.1f s measured per row; latency of 200 answers\n",
      opt.connections, opt.warmup, opt.seconds);
  std::printf(
      "  poll        `runsync sync --full` of %d runs (250 per page) from the fake "
      "TestRail server in this process\n",
      opt.poll_runs);
  std::printf("  command     %s\n\n", runsync::bench::command_line(argc, argv).c_str());
  std::fflush(stdout);

  for (const fs::path& dir : {empty_dir, history_dir, aged_dir}) {
    const std::string config = (dir / "migrate.toml").string();
    std::ofstream(config) << "[storage]\npath = \"" << (dir / "runsync.db").string() << "\"\n";
    const auto r = runsync::testing::run_command({opt.binary, "migrate", "--config", config});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "error: migrate failed: %s\n", r.err.c_str());
      return 1;
    }
  }
  const auto load_t0 = Clock::now();
  bulk_load(history_db, opt.history, std::time(nullptr), 29);
  bulk_load(aged_db, opt.history, std::time(nullptr), 90);
  const double load_seconds = since(load_t0);

  struct Row {
    const char* name;
    std::string db;
    fs::path dir;
    bool wait_for_retention;
    PollResult poll;
    std::vector<IngestResult> ingest;  // one per round
  };
  std::vector<Row> rows = {{"empty", empty_db, empty_dir, false, {}, {}},
                           {"history", history_db, history_dir, false, {}, {}},
                           {"aged", aged_db, aged_dir, true, {}, {}}};
  runsync::test::FakeTestRail::Options fo;
  fo.max_page_size = 250;
  runsync::test::FakeTestRail fake(fo);
  fake.add_project(1);
  for (int i = 0; i < opt.poll_runs; ++i) {
    fake.add_run({{"id", 2'000'000'000 + i},
                  {"project_id", 1},
                  {"name", "Nightly " + std::to_string(i)},
                  {"suite_id", 1 + i % 7},
                  {"is_completed", i % 3 == 0},
                  {"passed_count", i % 50},
                  {"untested_count", 100 - i % 50}});
  }
  bool ok = true;
  for (int round = 0; round < opt.rounds; ++round) {
    for (Row& row : rows) {
      if (round == 0) {
        // The poll first: runs the live events create would otherwise be
        // refreshed by it (get_run each), which is not the poll being measured.
        std::fprintf(stderr, "full poll on the %s database...\n", row.name);
        row.poll = full_poll(opt, row.dir, row.db, fake);
        ok = ok && row.poll.ok && row.poll.runs == opt.poll_runs;
      }
      std::fprintf(stderr, "round %d: ingest on the %s database...\n", round + 1, row.name);
      row.ingest.push_back(ingest(opt, row.dir, row.db, row.wait_for_retention && round == 0));
      ok = ok && row.ingest.back().ok;
    }
  }

  std::printf("bulk load of the history: %.0f s\n\n", load_seconds);
  std::printf("%-5s %-8s %10s %9s %8s %8s %7s %9s %7s %7s %7s %7s %6s %11s %8s %8s %7s\n", "round",
              "database", "journal", "changes", "file MiB", "free MiB", "WAL MiB", "events/s",
              "p50 ms", "p99 ms", "max ms", "commit", "batch", "fsync ms", "poll s", "requests",
              "prune s");
  for (int round = 0; round < opt.rounds; ++round) {
    for (const Row& r : rows) {
      const IngestResult& in = r.ingest[static_cast<std::size_t>(round)];
      char prune[16] = "-";
      if (in.prune_seconds >= 0) std::snprintf(prune, sizeof prune, "%.0f", in.prune_seconds);
      char poll_s[16] = "-", requests[16] = "-";
      if (round == 0) {
        std::snprintf(poll_s, sizeof poll_s, "%.2f", r.poll.seconds);
        std::snprintf(requests, sizeof requests, "%zu", r.poll.requests);
      }
      char fsync[24];
      std::snprintf(fsync, sizeof fsync, "%.2f/%.2f", in.fsync_before, in.fsync_after);
      std::printf("%-5d %-8s %10" PRId64 " %9" PRId64
                  " %8.0f %8.0f %7.0f %9.0f %7.2f %7.2f %7.1f %7.2f %6.1f %11s %8s %8s %7s\n",
                  round + 1, r.name, in.at_start.journal, in.at_start.changes,
                  in.at_start.file_mib, in.at_start.free_mib, in.at_start.wal_mib,
                  in.events_per_s, in.p50, in.p99, in.max, in.commit_ms, in.batch, fsync, poll_s,
                  requests, prune);
    }
  }
  std::printf("\nhistory = %" PRId64
              " journal rows over 29 days (all inside the 30-day window); "
              "aged = as many over 90 days, pruned by the daemon before its first load (prune "
              "s: from its start until no row was past the window); journal/changes/file/free/"
              "WAL = when the load started (WAL: the -wal file, which keeps the largest size it "
              "reached); commit = the daemon's average commit (ms), batch = events per "
              "commit, both from /metrics over the window; fsync = p50 of a 4 KiB append + "
              "fdatasync on the database's filesystem just before and after the window (compare "
              "rows only where it is about the same: a virtual disk changes speed for minutes "
              "at a time); poll s = wall time of the full poll, which ran first, on the loaded "
              "(not yet pruned) file; requests = API requests it made; later rounds write on "
              "top of what earlier rounds wrote\n",
              opt.history);
  for (int round = 0; round < opt.rounds; ++round) {
    const IngestResult& e = rows[0].ingest[static_cast<std::size_t>(round)];
    for (std::size_t i = 1; i < rows.size(); ++i) {
      const IngestResult& h = rows[i].ingest[static_cast<std::size_t>(round)];
      if (e.events_per_s <= 0 || e.p99 <= 0) break;
      const double rate = h.events_per_s / e.events_per_s;
      const double p99 = h.p99 / e.p99;
      std::printf(
          "round %d, %s vs empty: events/s x%.2f (target >= 0.80: %s), p99 x%.2f "
          "(target <= 2: %s)\n",
          round + 1, rows[i].name, rate, rate >= 0.8 ? "met" : "MISSED", p99,
          p99 <= 2 ? "met" : "MISSED");
    }
  }
  for (const Row& r : rows) {
    for (const IngestResult& in : r.ingest) {
      if (!in.problem.empty()) std::printf("PROBLEM (%s): %s\n", r.name, in.problem.c_str());
    }
    if (!r.poll.ok || r.poll.runs != opt.poll_runs) {
      std::printf("PROBLEM (%s): the full poll mirrored %" PRId64 " of %d runs\n", r.name,
                  r.poll.runs, opt.poll_runs);
    }
  }
  if (opt.keep) {
    std::printf("\nkept %s\n", root.c_str());
  } else {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  return ok ? 0 : 1;
}
