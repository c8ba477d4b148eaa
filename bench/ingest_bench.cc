// Ingest benchmark: starts the real `runsync serve` binary on a fresh
// database, POSTs realistic webhook events to it over keep-alive
// connections (closed loop: each connection sends its next request as soon
// as the previous answer arrives), and prints events/s, latency percentiles,
// the daemon's CPU time and peak RSS. Every figure is compared against a
// baseline run in the same invocation: the naive design, one write
// transaction per event (storage.max_batch = 1).
//
// After each run it stops the daemon with SIGTERM (which must exit 0) and
// checks with sqlite3 that the journal holds exactly one row per event
// answered 200 (minus answers "duplicate", which are not journaled).
//
// Performance is reported, never asserted: the exit status is non-zero
// only when something was wrong (an unexpected answer, a lost event, a
// daemon that did not start or stop cleanly).
//
// One more row runs the group-commit daemon with its database on tmpfs,
// where a flush costs nothing: the daemon's CPU ceiling on this machine.
//
// With --litestream PATH (the default is the binary scripts/deps.sh
// installs, when present), two more rows run the group-commit daemon with
// `litestream replicate` beside it (a file replica), once with
// storage.checkpoints = "runsync" and once with "external", and report
// the Litestream generations started (1 is right), the largest -wal file,
// and the replica's lag: how long after the last answer Litestream wrote
// the replica's last file (a restore must then hold the last event).
//
// Usage: runsync_ingest_bench [--quick] [--connections 32,1] [--seconds 10]
//          [--warmup 2] [--runs 10000] [--events-per-run 6]
//          [--baseline-connections 32] [--no-normal] [--dir DIR]
//          [--tmpfs-dir /dev/shm | --no-tmpfs] [--queue-capacity N]
//          [--binary PATH] [--keep] [--litestream PATH | --no-litestream]
// See bench/README.md.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/cpu_time.h"
#include "bench/support/event_stream.h"
#include "bench/support/fsync_probe.h"
#include "bench/support/machine.h"
#include "bench/support/stats.h"
#include "support/hostile_load.h"
#include "support/process.h"

#ifndef RUNSYNC_BINARY
#define RUNSYNC_BINARY "runsync"
#endif
#ifndef RUNSYNC_BUILD_TYPE
#define RUNSYNC_BUILD_TYPE "unknown"
#endif
#ifndef LITESTREAM_BINARY
#define LITESTREAM_BINARY ""
#endif

namespace {

using runsync::bench::probe_fsync;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using runsync::bench::EventStream;
using runsync::bench::machine_cpu;
using runsync::bench::MachineCpu;
using runsync::bench::metric_value;
using runsync::bench::percentile_of_sorted;
using runsync::bench::process_cpu_seconds;
using runsync::bench::steal_percent;

// --- options -----------------------------------------------------------

struct Options {
  std::vector<int> connections{32, 1};
  std::vector<int> baseline_connections{32};
  double seconds = 10;
  double warmup = 2;
  int runs = 10000;
  int events_per_run = 6;
  bool normal_baseline = true;
  std::string tmpfs_dir = "/dev/shm";  // empty: no CPU-ceiling row
  bool quick = false;
  bool keep = false;
  std::uint64_t queue_capacity = 0;  // 0: the daemon's default
  std::string dir;
  std::string binary = RUNSYNC_BINARY;
  std::string litestream = LITESTREAM_BINARY;  // empty: no replicated rows
};

constexpr const char* kUsage =
    "[options]\n"
    "  --connections LIST          group-commit runs, e.g. 32,1 (default 32,1)\n"
    "  --baseline-connections LIST naive (max_batch = 1) runs (default 32)\n"
    "  --seconds S                 measured seconds per run (default 10)\n"
    "  --warmup S                  warm-up seconds before measuring (default 2)\n"
    "  --runs N                    distinct run ids in flight (default 10000)\n"
    "  --events-per-run N          events per run: started, updated..., "
    "report_changed, completed/aborted (default 6)\n"
    "  --no-normal                 skip the synchronous = normal naive baseline\n"
    "  --tmpfs-dir DIR             also run group commit at the first connection count\n"
    "                              with the database on this tmpfs, where a flush\n"
    "                              costs nothing: the daemon's CPU ceiling\n"
    "                              (default /dev/shm)\n"
    "  --no-tmpfs                  skip that row\n"
    "  --queue-capacity N          webhook.queue_capacity (default: daemon's)\n"
    "  --dir DIR                   where the temporary databases go "
    "(default $TMPDIR or /tmp)\n"
    "  --binary PATH               runsync binary (default the built one)\n"
    "  --keep                      keep the temporary directories\n"
    "  --litestream PATH           litestream binary for the replicated rows\n"
    "  --no-litestream             skip the replicated rows\n"
    "  --quick                     ~10 s smoke run (2 s per row, no normal or tmpfs row)\n";

Options parse_options(int argc, char** argv) {
  Options o;
  bool seconds_set = false, warmup_set = false;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--connections")) {
      o.connections = args.list(1, 10000);
    } else if (args.is("--baseline-connections")) {
      const std::string v = args.text();
      o.baseline_connections = v == "none" ? std::vector<int>{} : args.list_of(v, 1, 10000);
    } else if (args.is("--seconds")) {
      o.seconds = args.number(0.1);
      seconds_set = true;
    } else if (args.is("--warmup")) {
      o.warmup = args.number(0);
      warmup_set = true;
    } else if (args.is("--runs")) {
      o.runs = static_cast<int>(args.number(1));
    } else if (args.is("--events-per-run")) {
      o.events_per_run = static_cast<int>(args.number(1));
    } else if (args.is("--no-tmpfs")) {
      o.tmpfs_dir.clear();
    } else if (args.is("--tmpfs-dir")) {
      o.tmpfs_dir = args.text();
    } else if (args.is("--no-normal")) {
      o.normal_baseline = false;
    } else if (args.is("--queue-capacity")) {
      o.queue_capacity = static_cast<std::uint64_t>(args.number(1));
    } else if (args.is("--dir")) {
      o.dir = args.text();
    } else if (args.is("--binary")) {
      o.binary = args.text();
    } else if (args.is("--keep")) {
      o.keep = true;
    } else if (args.is("--litestream")) {
      o.litestream = args.text();
    } else if (args.is("--no-litestream")) {
      o.litestream.clear();
    } else if (args.is("--quick")) {
      o.quick = true;
    } else {
      args.unknown();
    }
  }
  if (o.quick) {
    if (!seconds_set) o.seconds = 2;
    if (!warmup_set) o.warmup = 0.5;
    o.normal_baseline = false;
    o.tmpfs_dir.clear();
  }
  if (o.dir.empty()) o.dir = runsync::bench::default_temp_dir();
  return o;
}

// --- the daemon as a child process --------------------------------------

struct ProcCpu {
  double user = 0, sys = 0;
  double total() const { return user + sys; }
};

// utime and stime (fields 14 and 15) of /proc/.../stat.
std::optional<ProcCpu> read_cpu(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (rest >> field) f.push_back(field);
  if (f.size() < 13) return std::nullopt;  // f[0] is field 3 (state)
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return ProcCpu{std::stod(f[11]) / tick, std::stod(f[12]) / tick};
}

// CPU of the main thread (the daemon's I/O loop) and of the others (the
// writer, WAL sync and checkpoint threads), so that a run shows which side
// is busy.
struct ThreadCpu {
  ProcCpu main, others;
  int threads = 0;
};

ThreadCpu read_thread_cpu(pid_t pid) {
  ThreadCpu out;
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(task, ec)) {
    auto cpu = read_cpu(e.path().string() + "/stat");
    if (!cpu) continue;
    ++out.threads;
    ProcCpu& into = e.path().filename() == std::to_string(pid) ? out.main : out.others;
    into.user += cpu->user;
    into.sys += cpu->sys;
  }
  return out;
}

// write_bytes (what reached the storage layer) and syscw from /proc/PID/io.
struct ProcIo {
  double write_bytes = 0;
  double write_calls = 0;
};

ProcIo read_io(pid_t pid) {
  ProcIo out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  double value = 0;
  while (in >> key >> value) {
    if (key == "write_bytes:") out.write_bytes = value;
    if (key == "syscw:") out.write_calls = value;
  }
  return out;
}

std::string last_lines(const std::string& text, int n) {
  std::size_t pos = text.size();
  while (n-- > 0 && pos > 0) {
    pos = text.rfind('\n', pos > 1 ? pos - 2 : 0);
    if (pos == std::string::npos) return text;
    ++pos;
  }
  return text.substr(pos);
}

// `runsync serve` as a child (tests/support/process.h: killed if the bench
// dies, no systemd notify socket inherited).
class Daemon {
 public:
  // Starts `binary serve --config config`, output to `log`; waits for the
  // listening line. Returns an error message, empty on success.
  std::string start(const std::string& binary, const std::string& config, const std::string& log) {
    try {
      child_ = std::make_unique<runsync::testing::ChildProcess>(
          std::vector<std::string>{binary, "serve", "--config", config}, log,
          std::vector<std::string>{}, std::vector<std::string>{"NOTIFY_SOCKET", "WATCHDOG_USEC"});
    } catch (const std::exception& e) {
      return e.what();
    }
    port_ = runsync::testing::wait_for_listen_port(*child_, std::chrono::seconds(15));
    if (port_ != 0) return "";
    if (child_->exited()) {
      return "the daemon exited before listening: " + last_lines(child_->log(), 3);
    }
    return "the daemon did not report listening within 15 s";
  }

  // SIGTERM, then waits up to 10 s. Returns the exit code (or -signal,
  // or -1000 on timeout) and the time it took.
  std::pair<int, double> stop() {
    if (!child_) return {-1000, 0};
    const auto t0 = Clock::now();
    child_->signal(SIGTERM);
    const std::optional<int> status = child_->wait(std::chrono::seconds(10));
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!status) return {-1000, took};
    if (WIFEXITED(*status)) return {WEXITSTATUS(*status), took};
    return {-WTERMSIG(*status), took};
  }

  pid_t pid() const { return child_ ? child_->pid() : -1; }
  std::uint16_t port() const { return port_; }

 private:
  std::unique_ptr<runsync::testing::ChildProcess> child_;
  std::uint16_t port_ = 0;
};

// --- the load generator ---------------------------------------------------

struct LoadResult {
  double measured_seconds = 0;
  std::uint64_t measured_ok = 0;  // 200 answers received inside the window
  std::vector<std::uint32_t> latency_us;  // of those
  // Over the whole run (warm-up included): for checking the database.
  std::uint64_t sent = 0;
  std::uint64_t ok = 0;
  std::uint64_t busy = 0;  // 503
  std::map<int, std::uint64_t> other_status;
  std::map<std::string, std::uint64_t> results;  // applied, duplicate, stale, ignored
  std::uint64_t transport_errors = 0;
  std::string first_error;
  double client_cpu_seconds = 0;  // this process, inside the window
};

class LoadGenerator {
 public:
  LoadGenerator(std::uint16_t port, int connections, EventStream& events, double warmup,
                double seconds, std::function<void()> on_window_start,
                std::function<void()> on_window_end)
      : port_(port),
        connections_(connections),
        events_(events),
        warmup_(warmup),
        seconds_(seconds),
        on_window_start_(std::move(on_window_start)),
        on_window_end_(std::move(on_window_end)),
        phase_timer_(ioc_),
        watchdog_(ioc_) {
    header_prefix_ = "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                     "\r\nUser-Agent: runsync-ingest-bench\r\nContent-Type: application/json\r\n"
                     "Content-Length: ";
  }

  LoadResult run() {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port_);
    for (int i = 0; i < connections_; ++i) {
      auto c = std::make_unique<Conn>(ioc_);
      beast::error_code ec;
      c->socket.connect(ep, ec);
      if (!ec) c->socket.set_option(tcp::no_delay(true), ec);
      if (ec) {
        note_error("connect: " + ec.message());
        continue;
      }
      conns_.push_back(std::move(c));
    }
    result_.latency_us.reserve(static_cast<std::size_t>(seconds_ * 60000) + 1024);
    for (auto& c : conns_) send_next(*c);
    phase_timer_.expires_after(to_duration(warmup_));
    phase_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      start_window();
    });
    // Safety net: nothing should take this long.
    watchdog_.expires_after(to_duration(warmup_ + seconds_ + 30));
    watchdog_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      note_error("timed out waiting for answers");
      for (auto& c : conns_) {
        beast::error_code ignored;
        c->socket.close(ignored);
      }
    });
    ioc_.run();
    return std::move(result_);
  }

 private:
  struct Conn {
    explicit Conn(asio::io_context& ioc) : socket(ioc) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    std::string request;
    std::string body;
    std::optional<http::response_parser<http::string_body>> parser;
    Clock::time_point sent_at;
  };

  static Clock::duration to_duration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void start_window() {
    if (on_window_start_) on_window_start_();
    window_open_ = true;
    window_start_ = Clock::now();
    cpu_start_ = process_cpu_seconds();
    phase_timer_.expires_after(to_duration(seconds_));
    phase_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      window_open_ = false;
      result_.measured_seconds = std::chrono::duration<double>(Clock::now() - window_start_).count();
      result_.client_cpu_seconds = process_cpu_seconds() - cpu_start_;
      stopping_ = true;
      if (on_window_end_) on_window_end_();
      maybe_finish();
    });
  }

  void note_error(const std::string& what) {
    ++result_.transport_errors;
    if (result_.first_error.empty()) result_.first_error = what;
  }

  void send_next(Conn& c) {
    if (stopping_) {
      finish(c);
      return;
    }
    events_.next(c.body);
    c.request = header_prefix_;
    c.request += std::to_string(c.body.size());
    c.request += "\r\n\r\n";
    c.request += c.body;
    c.parser.emplace();
    c.parser->body_limit(64 * 1024);
    ++in_flight_;
    ++result_.sent;
    c.sent_at = Clock::now();
    asio::async_write(c.socket, asio::buffer(c.request),
                      [this, &c](beast::error_code ec, std::size_t) {
                        if (ec) return fail(c, "write: " + ec.message());
                        http::async_read(c.socket, c.buffer, *c.parser,
                                         [this, &c](beast::error_code ec2, std::size_t) {
                                           on_response(c, ec2);
                                         });
                      });
  }

  void fail(Conn& c, const std::string& what) {
    --in_flight_;
    note_error(what);
    finish(c);
  }

  void on_response(Conn& c, beast::error_code ec) {
    if (ec) return fail(c, "read: " + ec.message());
    const auto now = Clock::now();
    --in_flight_;
    const auto& res = c.parser->get();
    const int status = static_cast<int>(res.result_int());
    if (status == 200) {
      ++result_.ok;
      const std::string& body = res.body();
      const auto p = body.find("\"result\":\"");
      if (p != std::string::npos) {
        const auto q = body.find('"', p + 10);
        ++result_.results[body.substr(p + 10, q - p - 10)];
      } else {
        ++result_.results["(no result)"];
      }
      if (window_open_) {
        ++result_.measured_ok;
        const auto us =
            std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent_at).count();
        result_.latency_us.push_back(static_cast<std::uint32_t>(us));
      }
    } else if (status == 503) {
      ++result_.busy;
    } else {
      ++result_.other_status[status];
      if (result_.first_error.empty()) {
        result_.first_error = "HTTP " + std::to_string(status) + ": " + res.body();
      }
    }
    if (!res.keep_alive()) {
      note_error("the daemon closed a connection");
      return finish(c);
    }
    send_next(c);
  }

  void finish(Conn& c) {
    beast::error_code ignored;
    c.socket.shutdown(tcp::socket::shutdown_both, ignored);
    c.socket.close(ignored);
    ++finished_;
    maybe_finish();
  }

  void maybe_finish() {
    if (finished_ == conns_.size()) {
      phase_timer_.cancel();
      watchdog_.cancel();
      if (window_open_) {  // every connection failed before the window ended
        window_open_ = false;
        result_.measured_seconds =
            std::chrono::duration<double>(Clock::now() - window_start_).count();
      }
    }
  }

  asio::io_context ioc_{1};
  std::uint16_t port_;
  int connections_;
  EventStream& events_;
  double warmup_, seconds_;
  std::function<void()> on_window_start_, on_window_end_;
  asio::steady_timer phase_timer_, watchdog_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::string header_prefix_;
  std::size_t finished_ = 0;
  std::uint64_t in_flight_ = 0;
  bool window_open_ = false;
  bool stopping_ = false;
  Clock::time_point window_start_;
  double cpu_start_ = 0;
  LoadResult result_;
};

// GET path over a fresh connection; empty on error.
std::string http_get(std::uint16_t port, const std::string& target) {
  try {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(false);
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    return res.body();
  } catch (const std::exception&) {
    return "";
  }
}

// --- the database check ----------------------------------------------------

struct DbCheck {
  std::int64_t rows = -1;
  std::string integrity;
  std::string error;
};

DbCheck check_database(const std::string& path) {
  DbCheck out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    out.error = std::string("open: ") + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return out;
  }
  auto one = [&](const char* sql, std::string& text, std::int64_t& number) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
      out.error = sqlite3_errmsg(db);
      return;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
      number = sqlite3_column_int64(st, 0);
      const unsigned char* t = sqlite3_column_text(st, 0);
      text = t ? reinterpret_cast<const char*>(t) : "";
    } else {
      out.error = sqlite3_errmsg(db);
    }
    sqlite3_finalize(st);
  };
  std::string ignored_text;
  std::int64_t ignored_number = 0;
  one("SELECT count(*) FROM webhook_events", ignored_text, out.rows);
  one("PRAGMA quick_check", out.integrity, ignored_number);
  sqlite3_close(db);
  return out;
}

// The largest webhook_events.seq of the database at `path`, -1 when it
// cannot be read.
std::int64_t last_journal_seq(const std::string& path) {
  sqlite3* db = nullptr;
  std::int64_t seq = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), 0) FROM webhook_events", -1, &st,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      seq = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return seq;
}

// --- scenarios -----------------------------------------------------------

struct Scenario {
  std::string name;
  std::string synchronous;  // full | normal
  int max_batch = 0;        // 0: the daemon's default (group commit)
  int connections = 0;
  bool baseline = false;
  bool tmpfs = false;  // database on tmpfs: no flush cost, shows the CPU ceiling
  // litestream replicate beside the daemon, with this storage.checkpoints;
  // empty: no replication.
  std::string replicated_checkpoints = "";
};

// What a replicated row adds.
struct Replication {
  int generations = -1;      // directories under the replica's generations/
  double wal_peak_mib = -1;  // the largest -wal file seen during the run
  double lag_s = -1;         // last answer -> the replica's newest file
  int restores = 0;          // restores done (one, which must hold the last event)
  double restore_s = 0;      // its time
  std::string error;
};

struct Outcome {
  Scenario scenario;
  bool skipped = false;
  std::string note;
  LoadResult load;
  double events_per_s = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;  // ms
  ThreadCpu cpu;                              // daemon, inside the window
  ProcIo io;                                  // daemon, inside the window
  double rss_peak_mb = -1;
  double wal_mib = -1;  // the -wal file at the end of the window: it never shrinks while runsync runs
  double fsync_before = -1, fsync_after = -1;  // ms (p50), probed next to this row
  double steal_pct = -1;  // the machine's CPU time stolen by the hypervisor in the window
  double avg_batch = -1;
  double avg_commit_ms = -1;
  int exit_code = 0;
  double stop_seconds = 0;
  DbCheck db;
  Replication replication;
  std::int64_t expected_rows = 0;
  bool ok = true;
  std::vector<std::string> problems;
};

ProcCpu minus(const ProcCpu& a, const ProcCpu& b) { return {a.user - b.user, a.sys - b.sys}; }

Outcome run_scenario(const Options& opt, const Scenario& sc, const fs::path& root,
                     const fs::path& tmpfs_root, int index) {
  Outcome out;
  out.scenario = sc;
  const fs::path dir = (sc.tmpfs ? tmpfs_root : root) / ("run" + std::to_string(index));
  fs::create_directories(dir);
  const std::string db = (dir / "runsync.db").string();
  const std::string config = (dir / "runsync.toml").string();
  {
    std::ofstream f(config);
    f << "[storage]\npath = \"" << db << "\"\nsynchronous = \"" << sc.synchronous << "\"\n";
    if (sc.max_batch > 0) f << "max_batch = " << sc.max_batch << "\n";
    if (!sc.replicated_checkpoints.empty()) {
      f << "checkpoints = \"" << sc.replicated_checkpoints << "\"\n";
    }
    f << "\n[webhook]\nlisten = \"127.0.0.1:0\"\npath = \"/webhook\"\n";
    if (opt.queue_capacity > 0) f << "queue_capacity = " << opt.queue_capacity << "\n";
    f << "\n[log]\nlevel = \"info\"\n";  // the listening line is info
  }

  // The disk's flush latency can drift (virtual disks especially): probe
  // it next to every row so rows can be compared.
  out.fsync_before = probe_fsync(dir, 50, 0.3).first;

  // Litestream starts first, as runsync-litestream.service does.
  const fs::path replica = dir / "replica";
  std::unique_ptr<runsync::testing::ChildProcess> litestream;
  if (!sc.replicated_checkpoints.empty()) {
    const std::string ls_config = (dir / "litestream.yml").string();
    std::ofstream(ls_config) << "dbs:\n  - path: " << db << "\n    replicas:\n"
                             << "      - type: file\n        path: " << replica.string() << "\n";
    litestream = std::make_unique<runsync::testing::ChildProcess>(
        std::vector<std::string>{opt.litestream, "replicate", "-config", ls_config},
        (dir / "litestream.log").string());
  }
  // The -wal file's size, sampled while the row runs.
  std::atomic<bool> sampling{true};
  std::atomic<std::uintmax_t> wal_peak{0};
  std::thread sampler([&] {
    while (sampling) {
      std::error_code ec;
      const auto size = fs::file_size(db + "-wal", ec);
      if (!ec && size > wal_peak) wal_peak = size;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  struct StopSampler {
    std::atomic<bool>& flag;
    std::thread& thread;
    ~StopSampler() {
      flag = false;
      thread.join();
    }
  } stop_sampler{sampling, sampler};

  Daemon daemon;
  const std::string err = daemon.start(opt.binary, config, (dir / "daemon.log").string());
  if (!err.empty()) {
    out.skipped = true;
    out.note = err;
    // A binary without storage.max_batch cannot run the naive baseline:
    // report that, but it is not a failure of the benchmark.
    if (sc.max_batch > 0 && err.find("max_batch") != std::string::npos) {
      out.note = "this runsync does not know storage.max_batch yet; baseline skipped";
    } else {
      out.ok = false;
      out.problems.push_back(err);
    }
    return out;
  }

  const pid_t pid = daemon.pid();
  ThreadCpu cpu_start, cpu_end;
  ProcIo io_start, io_end;
  MachineCpu machine_start, machine_end;
  EventStream events(opt.runs, opt.events_per_run, runsync::bench::unix_now() - 86400);
  LoadGenerator load(
      daemon.port(), sc.connections, events, opt.warmup, opt.seconds,
      [&] {
        cpu_start = read_thread_cpu(pid);
        io_start = read_io(pid);
        machine_start = machine_cpu();
      },
      [&] {
        cpu_end = read_thread_cpu(pid);
        io_end = read_io(pid);
        machine_end = machine_cpu();
      });
  out.load = load.run();
  out.cpu.main = minus(cpu_end.main, cpu_start.main);
  out.cpu.others = minus(cpu_end.others, cpu_start.others);
  out.cpu.threads = cpu_end.threads;
  out.steal_pct = steal_percent(machine_start, machine_end);
  out.io.write_bytes = io_end.write_bytes - io_start.write_bytes;
  out.io.write_calls = io_end.write_calls - io_start.write_calls;
  const long hwm_kb = runsync::testing::proc_status_kb(pid, "VmHWM");
  out.rss_peak_mb = hwm_kb < 0 ? -1 : static_cast<double>(hwm_kb) / 1024.0;
  {
    std::error_code ec;
    const auto wal_bytes = fs::file_size(db + "-wal", ec);
    if (!ec) out.wal_mib = static_cast<double>(wal_bytes) / (1024.0 * 1024.0);
  }
  const std::string metrics = http_get(daemon.port(), "/metrics");
  const double commits = metric_value(metrics, "runsync_db_commits_total");
  const double jobs = metric_value(metrics, "runsync_db_committed_jobs_total");
  const double commit_sum = metric_value(metrics, "runsync_db_commit_seconds_sum");
  if (commits > 0 && jobs >= 0) out.avg_batch = jobs / commits;
  if (commits > 0 && commit_sum >= 0) out.avg_commit_ms = commit_sum / commits * 1000.0;

  if (litestream) {
    // The replica's lag: once Litestream has written nothing new for 3 s
    // (its sync interval is 1 s), the time from the last answer to its
    // newest replica file; then one restore must hold the last event.
    Replication& r = out.replication;
    const auto answered = fs::file_time_type::clock::now();
    const std::int64_t last = last_journal_seq(db);
    auto newest = [&] {
      fs::file_time_type t = fs::file_time_type::min();
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(replica, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code ec2;
        const auto w = fs::last_write_time(it->path(), ec2);
        if (!ec2 && w > t) t = w;
      }
      return t;
    };
    auto seen = newest();
    auto quiet_since = fs::file_time_type::clock::now();
    while (fs::file_time_type::clock::now() - quiet_since < std::chrono::seconds(3) &&
           fs::file_time_type::clock::now() - answered < std::chrono::seconds(120)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const auto t = newest();
      if (t != seen) {
        seen = t;
        quiet_since = fs::file_time_type::clock::now();
      }
    }
    r.lag_s = std::chrono::duration<double>(seen - answered).count();
    const std::string restored = (dir / "restored.db").string();
    const auto t0 = Clock::now();
    const auto result = runsync::testing::run_command(
        {opt.litestream, "restore", "-o", restored, "file://" + replica.string()});
    r.restore_s = std::chrono::duration<double>(Clock::now() - t0).count();
    r.restores = 1;
    if (result.exit_code != 0 || last_journal_seq(restored) < last) {
      r.error = "a restore of the replica lacks the last journaled event: " + result.err;
    }
  }
  std::tie(out.exit_code, out.stop_seconds) = daemon.stop();
  if (litestream) {
    litestream->signal(SIGTERM);
    (void)litestream->wait(std::chrono::seconds(30));
    std::error_code ec;
    int generations = 0;
    for (const auto& e : fs::directory_iterator(replica / "generations", ec)) {
      (void)e;
      ++generations;
    }
    out.replication.generations = generations;
  }
  sampling = false;
  out.replication.wal_peak_mib = static_cast<double>(wal_peak.load()) / (1024.0 * 1024.0);
  out.fsync_after = probe_fsync(dir, 50, 0.3).first;

  auto& L = out.load;
  std::sort(L.latency_us.begin(), L.latency_us.end());
  out.events_per_s = L.measured_seconds > 0 ? L.measured_ok / L.measured_seconds : 0;
  out.p50 = percentile_of_sorted(L.latency_us, 0.50) / 1000.0;
  out.p90 = percentile_of_sorted(L.latency_us, 0.90) / 1000.0;
  out.p99 = percentile_of_sorted(L.latency_us, 0.99) / 1000.0;
  out.max = L.latency_us.empty() ? 0 : L.latency_us.back() / 1000.0;

  out.db = check_database(db);
  const std::uint64_t duplicates = L.results.count("duplicate") ? L.results.at("duplicate") : 0;
  out.expected_rows = static_cast<std::int64_t>(L.ok - duplicates);

  auto problem = [&](const std::string& p) {
    out.ok = false;
    out.problems.push_back(p);
  };
  if (L.transport_errors > 0) {
    problem(std::to_string(L.transport_errors) + " transport errors (first: " + L.first_error +
            ")");
  }
  for (const auto& [status, n] : L.other_status) {
    problem(std::to_string(n) + " answers with HTTP " + std::to_string(status) +
            (L.first_error.empty() ? "" : " (first: " + L.first_error + ")"));
  }
  if (out.exit_code != 0) {
    problem(out.exit_code == -1000 ? "the daemon did not exit within 10 s of SIGTERM"
                                   : "the daemon exited with " + std::to_string(out.exit_code) +
                                         " after SIGTERM");
  }
  if (!out.db.error.empty()) problem("database check: " + out.db.error);
  if (out.db.rows != out.expected_rows) {
    problem("webhook_events holds " + std::to_string(out.db.rows) + " rows, expected " +
            std::to_string(out.expected_rows) + " (200 answers minus duplicates)");
  }
  if (out.db.integrity != "ok") problem("PRAGMA quick_check: " + out.db.integrity);
  if (!out.replication.error.empty()) problem(out.replication.error);
  if (litestream && out.replication.generations != 1) {
    problem("litestream started " + std::to_string(out.replication.generations) +
            " generations (expected 1)");
  }
  if (duplicates > 0) {
    out.note = std::to_string(duplicates) + " answered duplicate (bodies should be unique)";
  }
  if (!opt.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return out;
}

// --- report --------------------------------------------------------------

std::string filesystem_of(const fs::path& p) {
  // The longest mount point that is a prefix of the canonical path.
  std::error_code ec;
  const std::string path = fs::canonical(p, ec).string();
  std::ifstream in("/proc/mounts");
  std::string dev, mnt, type, rest, best_dev, best_mnt, best_type;
  while (in >> dev >> mnt >> type && std::getline(in, rest)) {
    const bool prefix = path.rfind(mnt, 0) == 0 &&
                        (mnt == "/" || path.size() == mnt.size() || path[mnt.size()] == '/');
    if (prefix && mnt.size() >= best_mnt.size()) {
      best_dev = dev;
      best_mnt = mnt;
      best_type = type;
    }
  }
  if (best_type.empty()) return "unknown filesystem";
  return best_type + " on " + best_dev + " mounted at " + best_mnt;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s.empty() ? "none" : s;
}

const Outcome* find(const std::vector<Outcome>& all, bool baseline, const std::string& sync,
                    int connections) {
  for (const auto& o : all) {
    if (!o.skipped && !o.scenario.tmpfs && o.scenario.replicated_checkpoints.empty() &&
        o.scenario.baseline == baseline && o.scenario.synchronous == sync &&
        o.scenario.connections == connections) {
      return &o;
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  if (!runsync::bench::binary_is_executable(opt.binary)) return 2;

  std::vector<Scenario> scenarios;
  for (int c : opt.connections) {
    scenarios.push_back({"group commit, sync=full", "full", 0, c, false});
  }
  for (int c : opt.baseline_connections) {
    scenarios.push_back({"baseline: naive (max_batch=1), sync=full", "full", 1, c, true});
  }
  if (opt.normal_baseline) {
    for (int c : opt.baseline_connections) {
      scenarios.push_back({"baseline: naive (max_batch=1), sync=normal", "normal", 1, c, true});
    }
  }
  if (!opt.litestream.empty() && !opt.connections.empty()) {
    if (::access(opt.litestream.c_str(), X_OK) != 0) {
      std::fprintf(stderr,
                   "error: litestream %s is not executable (use --litestream PATH or "
                   "--no-litestream)\n",
                   opt.litestream.c_str());
      return 2;
    }
    for (const char* mode : {"runsync", "external"}) {
      Scenario sc{std::string("replicated, checkpoints=") + mode, "full", 0,
                  opt.connections.front(), false};
      sc.replicated_checkpoints = mode;
      scenarios.push_back(sc);
    }
  }
  fs::path tmpfs_root;
  if (!opt.tmpfs_dir.empty() && !opt.connections.empty()) {
    struct statfs sf {};
    constexpr long kTmpfsMagic = 0x01021994;
    std::string t = (fs::path(opt.tmpfs_dir) / "runsync-bench-XXXXXX").string();
    if (::statfs(opt.tmpfs_dir.c_str(), &sf) == 0 && sf.f_type == kTmpfsMagic &&
        ::mkdtemp(t.data()) != nullptr) {
      tmpfs_root = t;
      scenarios.push_back({"group commit, sync=full, DB on tmpfs (CPU)", "full", 0,
                           opt.connections.front(), false, true});
    } else {
      std::fprintf(stderr, "note: %s is not a writable tmpfs; no CPU-ceiling row\n",
                   opt.tmpfs_dir.c_str());
    }
  }

  const std::string made = runsync::bench::make_temp_dir(opt.dir, "runsync-bench-");
  if (made.empty()) return 2;
  const fs::path root = made;

  const runsync::bench::Machine host = runsync::bench::machine();
  std::printf("runsync ingest benchmark\n");
  std::printf("  date        %s\n", runsync::bench::utc_now_text().c_str());
  std::printf("  machine     %s, %u CPUs (nproc), %s\n", host.cpu_model.c_str(), host.cpus,
              host.kernel.c_str());
  std::printf(
      "  load avg    %.2f %.2f %.2f before the run%s\n", host.load[0], host.load[1], host.load[2],
      host.load[0] > 0.5 * host.cpus ? " -- the machine is busy: figures will be low and noisy"
                                     : "");
  std::printf("  binary      %s (bench built %s)\n", opt.binary.c_str(), RUNSYNC_BUILD_TYPE);
  std::printf("  database    %s (%s), a fresh database and daemon per row\n", root.c_str(),
              filesystem_of(root).c_str());
  const auto [fsync_p50, fsync_p99] = probe_fsync(root, 200, 2);
  std::printf("  fsync       4 KiB pwrite+fdatasync there: p50 %.3f ms, p99 %.3f ms", fsync_p50,
              fsync_p99);
  if (fsync_p50 > 0) {
    // Little's law: C requests in flight, each waiting for at least one
    // fsync, cannot complete faster than C per fsync.
    std::printf(" -> ceiling with one fsync per answer: %.0f events/s per connection",
                1000.0 / fsync_p50);
  }
  std::printf("\n");
  std::printf("  load        closed loop from this process (1 thread, Beast, keep-alive), "
              "same machine; %.1f s warm-up + %.1f s measured per row\n",
              opt.warmup, opt.seconds);
  std::printf("  rows        group commit (daemon default batch) at %s connections; naive "
              "baseline (storage.max_batch = 1) at %s, sync=full%s\n",
              join(opt.connections).c_str(), join(opt.baseline_connections).c_str(),
              opt.normal_baseline ? " and sync=normal" : "");
  std::printf("  events      %d runs in flight, %d events per run (started, updated, "
              "report_changed, completed/aborted), unique bodies\n",
              opt.runs, opt.events_per_run);
  std::printf("  command     %s\n\n", runsync::bench::command_line(argc, argv).c_str());
  std::fflush(stdout);

  std::vector<Outcome> outcomes;
  int index = 0;
  for (const auto& sc : scenarios) {
    std::fprintf(stderr, "running: %s, %d connection%s...\n", sc.name.c_str(), sc.connections,
                 sc.connections == 1 ? "" : "s");
    outcomes.push_back(run_scenario(opt, sc, root, tmpfs_root, index++));
  }

  std::printf("%-44s %5s %8s %7s %7s %7s %7s %10s %6s %4s %6s %6s %9s %5s\n", "scenario",
              "conns", "events/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "daemon", "RSS MB",
              "503", "batch", "commit", "fsync ms", "steal");
  std::printf("%-44s %5s %8s %7s %7s %7s %7s %10s %6s %4s %6s %6s %9s %5s\n", "", "", "", "",
              "", "", "", "CPU s", "peak", "", "avg", "avg ms", "bef/aft", "%");
  for (const auto& o : outcomes) {
    if (o.skipped) {
      std::printf("%-44s %5d   skipped: %s\n", o.scenario.name.c_str(), o.scenario.connections,
                  o.note.c_str());
      continue;
    }
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.1f+%.1f", o.cpu.main.total(), o.cpu.others.total());
    char batch[16] = "-";
    if (o.avg_batch > 0) std::snprintf(batch, sizeof batch, "%.1f", o.avg_batch);
    char commit[16] = "-";
    if (o.avg_commit_ms >= 0) std::snprintf(commit, sizeof commit, "%.2f", o.avg_commit_ms);
    char fsync[32];
    std::snprintf(fsync, sizeof fsync, "%.2f/%.2f", o.fsync_before, o.fsync_after);
    char steal[16] = "-";
    if (o.steal_pct >= 0) std::snprintf(steal, sizeof steal, "%.1f", o.steal_pct);
    std::printf("%-44s %5d %8.0f %7.3f %7.3f %7.3f %7.2f %10s %6.1f %4" PRIu64
                " %6s %6s %9s %5s\n",
                o.scenario.name.c_str(), o.scenario.connections, o.events_per_s, o.p50, o.p90,
                o.p99, o.max, cpu, o.rss_peak_mb, o.load.busy, batch, commit, fsync, steal);
  }

  std::printf("\ndaemon CPU s = io thread + the others (writer, WAL sync, checkpoints), over the "
              "measured window; batch = events per write transaction; commit = from a batch's "
              "COMMIT until it is durable (WAL write + fsync); fsync = 4 KiB pwrite+fdatasync p50 "
              "probed before and after the row; steal = the share of the machine's CPU time "
              "its hypervisor gave to others during the window (from /proc/stat): compare "
              "rows only when it is about the same\n");
  std::printf("\ndetails per row:\n");
  for (const auto& o : outcomes) {
    if (o.skipped) continue;
    const auto& L = o.load;
    const double cpu_total = o.cpu.main.total() + o.cpu.others.total();
    std::string results;
    for (const auto& [k, n] : L.results) {
      results += (results.empty() ? "" : ", ") + k + " " + std::to_string(n);
    }
    std::printf(
        "  %s @%d: %" PRIu64 " events in %.2f s; daemon io thread %.2f user + %.2f sys, "
        "others (%d threads) %.2f user + %.2f sys = %.1f us CPU/event; bench client %.2f s CPU; "
        "avg commit %.2f ms; storage writes %.1f KiB/event, %.1f write calls/event; WAL file %.0f MiB; answers: %s; 503 %" PRIu64 "; journal rows %" PRId64
        " (expected %" PRId64 "); SIGTERM exit %d in %.2f s%s%s\n",
        o.scenario.name.c_str(), o.scenario.connections, L.measured_ok, L.measured_seconds,
        o.cpu.main.user, o.cpu.main.sys, o.cpu.threads - 1, o.cpu.others.user, o.cpu.others.sys,
        L.measured_ok ? cpu_total / static_cast<double>(L.measured_ok) * 1e6 : 0.0,
        L.client_cpu_seconds, o.avg_commit_ms,
        L.measured_ok ? o.io.write_bytes / 1024.0 / static_cast<double>(L.measured_ok) : 0.0,
        L.measured_ok ? o.io.write_calls / static_cast<double>(L.measured_ok) : 0.0, o.wal_mib,
        results.c_str(), L.busy, o.db.rows,
        o.expected_rows, o.exit_code, o.stop_seconds, o.note.empty() ? "" : "; ",
        o.note.c_str());
  }

  bool replicated = false;
  for (const auto& o : outcomes)
    replicated = replicated || !o.scenario.replicated_checkpoints.empty();
  if (replicated) {
    std::printf("\nreplication (litestream %s, file replica, sync-interval 1s):\n",
                opt.litestream.c_str());
    std::printf("  %-36s %8s %7s %11s %9s %9s %10s\n", "row", "events/s", "p99 ms", "generations",
                "WAL peak", "WAL end", "lag s");
    auto row = [](const Outcome& o) {
      std::printf("  %-36s %8.0f %7.2f %11d %7.0f M %7.0f M %6.2f (restore %.2f s)\n",
                  o.scenario.name.c_str(), o.events_per_s, o.p99, o.replication.generations,
                  o.replication.wal_peak_mib, o.wal_mib, o.replication.lag_s,
                  o.replication.restore_s);
    };
    if (const Outcome* base = find(outcomes, false, "full", opt.connections.front())) {
      std::printf("  %-36s %8.0f %7.2f %11s %7.0f M %7.0f M %6s\n", "not replicated (baseline)",
                  base->events_per_s, base->p99, "-", base->replication.wal_peak_mib, base->wal_mib,
                  "-");
    }
    for (const auto& o : outcomes) {
      if (!o.skipped && !o.scenario.replicated_checkpoints.empty()) row(o);
    }
    std::printf(
        "  (WAL end = the -wal file when the window closed; lag = from the last answer "
        "until Litestream wrote its last replica file, i.e. the replica had caught up; "
        "then a restore was checked to hold the last journaled event)\n");
  }

  // Comparison with the baseline, and the targets (informational).
  std::printf("\ncomparison:\n");
  for (int c : opt.connections) {
    const Outcome* gc = find(outcomes, false, "full", c);
    const Outcome* naive = find(outcomes, true, "full", c);
    const Outcome* normal = find(outcomes, true, "normal", c);
    if (gc && naive) {
      std::printf("  @%d: group commit %.0f events/s vs naive sync=full %.0f (x%.1f), "
                  "p99 %.3f vs %.3f ms\n",
                  c, gc->events_per_s, naive->events_per_s,
                  naive->events_per_s > 0 ? gc->events_per_s / naive->events_per_s : 0.0,
                  gc->p99, naive->p99);
    }
    if (gc && normal) {
      std::printf("  @%d: group commit (sync=full) %.0f events/s vs naive sync=normal %.0f "
                  "(x%.1f)\n",
                  c, gc->events_per_s, normal->events_per_s,
                  normal->events_per_s > 0 ? gc->events_per_s / normal->events_per_s : 0.0);
    }
  }
  auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
  if (const Outcome* o = find(outcomes, false, "full", 32)) {
    std::printf("  target @32: >= 30000 events/s: %.0f %s; p99 <= 5 ms: %.3f %s; "
                "peak RSS <= 50 MB: %.1f %s; 503s: %" PRIu64 "\n",
                o->events_per_s, verdict(o->events_per_s >= 30000), o->p99,
                verdict(o->p99 <= 5.0), o->rss_peak_mb, verdict(o->rss_peak_mb <= 50.0),
                o->load.busy);
  }
  if (const Outcome* o = find(outcomes, false, "full", 1)) {
    std::printf("  target @1: p50 <= 0.3 ms: %.3f %s\n", o->p50, verdict(o->p50 <= 0.3));
  }

  bool all_ok = true;
  for (const auto& o : outcomes) {
    for (const auto& p : o.problems) {
      std::printf("PROBLEM: %s @%d: %s\n", o.scenario.name.c_str(), o.scenario.connections,
                  p.c_str());
    }
    all_ok = all_ok && o.ok;
  }
  std::error_code ec;
  if (opt.keep) {
    std::printf("\nkept %s %s\n", root.c_str(), tmpfs_root.c_str());
  } else {
    fs::remove_all(root, ec);
    if (!tmpfs_root.empty()) fs::remove_all(tmpfs_root, ec);
  }
  std::printf("\n%s\n", all_ok ? "correctness: every 200 answer is in the journal; daemons "
                                 "exited 0 on SIGTERM"
                               : "correctness: PROBLEMS (see above)");
  return all_ok ? 0 : 1;
}
