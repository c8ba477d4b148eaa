// Freshness under a busy TestRail (issue 27, SPEC §4a): starts the real
// `runsync serve` binary against the fake TestRail with --runs active runs
// in one project (2,000), max_requests_per_minute --budget (180) and
// poll_interval = "30s", then changes random runs at each --rates rate for
// --seconds, announcing every change by a TestRail webhook hint except a
// --drop share (10%) dropped. Prints, per rate, the time until the mirror
// shows each change (p50, p99, max; hinted and unhinted apart) and the API
// requests spent per change (from the first change until the last was
// shown and no refresh was pending). With --baseline PATH the
// same runs are made with that binary first (e.g. one built from an older commit), in the same
// invocation. Performance is reported, never asserted: the exit status is non-zero only when a
// daemon did not start or a hint was not answered 202.
//
// Usage: runsync_freshness_bench [--rates 2,10] [--seconds 60] [--runs 2000]
//          [--budget 180] [--drop 0.1] [--baseline PATH]
// See bench/README.md.

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/machine.h"
#include "bench/support/serve.h"
#include "bench/support/stats.h"

namespace {

using Clock = std::chrono::steady_clock;
using runsync::bench::percentile;
using runsync::bench::unix_now;
using runsync::test::FakeTestRail;
using runsync::testing::ChildProcess;
using runsync::testing::TestHttpClient;
using runsync::testing::wait_until;

struct Options {
  std::vector<int> rates = {2, 10};
  int seconds = 60;
  int runs = 2000;
  int budget = 180;
  double drop = 0.1;
  std::string baseline;
};

constexpr const char* kUsage =
    "[--rates 2,10] [--seconds 60] [--runs 2000] [--budget 180] [--drop 0.1]\n"
    "          [--baseline PATH]\n";

Options parse(int argc, char** argv) {
  Options o;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--rates")) {
      o.rates = args.list(1, 100000);
    } else if (args.is("--seconds")) {
      o.seconds = args.integer(1, 1000000);
    } else if (args.is("--runs")) {
      o.runs = args.integer(1, 10000000);
    } else if (args.is("--budget")) {
      o.budget = args.integer(1, 1000000);
    } else if (args.is("--drop")) {
      o.drop = args.number(0);
    } else if (args.is("--baseline")) {
      o.baseline = args.text();
    } else {
      args.unknown();
    }
  }
  return o;
}

struct Change {
  std::int64_t run = 0;
  std::int64_t version = 0;
  bool hinted = false;
  Clock::time_point at;
  double seconds = -1;  // until the mirror showed it; -1: never
};

struct Result {
  std::string binary;
  int rate = 0;
  std::vector<Change> changes;
  std::size_t requests = 0;
  bool ok = true;
};

// One daemon from `binary` against a fresh fake; changes at `rate` per second.
Result measure(const std::string& binary, int rate, const Options& opt) {
  Result result{binary, rate, {}, 0, true};
  FakeTestRail fake;
  fake.set_now(unix_now());  // the daemon's wall clock: polls are scheduled by it
  const std::vector<std::int64_t> runs =
      runsync::bench::add_runs(fake, opt.runs, {{"passed_count", 0}});
  runsync::testing::TempDir dir;
  const std::string db = dir.file("mirror.db");
  const std::string config = runsync::bench::hinted_serve_config(dir, db, fake, opt.budget);
  ChildProcess daemon({binary, "serve", "--config", config}, dir.file("serve.log"));
  const unsigned short port = runsync::bench::listen_port(daemon);
  if (port == 0) {
    result.ok = false;
    return result;
  }
  // The mirror's passed_count of every run, read at once.
  auto mirrored = [&]() {
    std::map<std::int64_t, std::int64_t> out;
    try {
      SQLite::Database read(db, SQLite::OPEN_READONLY);
      SQLite::Statement st(read, "SELECT run_id, coalesce(passed_count, -1) FROM runs");
      while (st.executeStep()) out[st.getColumn(0).getInt64()] = st.getColumn(1).getInt64();
    } catch (const std::exception&) {
    }
    return out;
  };
  if (!wait_until([&] { return mirrored().size() == runs.size(); }, std::chrono::seconds(60))) {
    std::fprintf(stderr, "first poll did not finish:\n%s\n", daemon.log().c_str());
    result.ok = false;
    return result;
  }

  std::mutex mu;
  std::vector<Change>& changes = result.changes;
  std::atomic<bool> changing{true};
  std::atomic<bool> watching{true};
  // Marks each change when the mirror shows its version (or a later one).
  std::thread watcher([&] {
    std::size_t first_open = 0;
    while (watching) {
      const auto seen = mirrored();
      const auto now = Clock::now();
      {
        std::lock_guard lock(mu);
        for (std::size_t i = first_open; i < changes.size(); ++i) {
          Change& c = changes[i];
          if (c.seconds >= 0) continue;
          const auto it = seen.find(c.run);
          if (it != seen.end() && it->second >= c.version) {
            c.seconds = std::chrono::duration<double>(now - c.at).count();
          }
        }
        while (first_open < changes.size() && changes[first_open].seconds >= 0) ++first_open;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto from = Clock::now();
  std::atomic<long> not_accepted{0};
  std::thread changer([&] {
    TestHttpClient client(port);
    std::mt19937 rng(static_cast<unsigned>(rate));
    std::uniform_real_distribution<double> coin(0, 1);
    const auto interval = std::chrono::duration<double>(1.0 / rate);
    auto next = Clock::now();
    std::int64_t version = 0;
    while (changing) {
      Change c;
      c.run = runs[rng() % runs.size()];
      c.version = ++version;
      c.hinted = coin(rng) >= opt.drop;
      fake.set_now(unix_now());
      fake.update_run(c.run, {{"passed_count", c.version}});
      c.at = Clock::now();
      {
        std::lock_guard lock(mu);
        changes.push_back(c);
      }
      if (c.hinted && runsync::bench::post_hint(client, c.run) != 202) ++not_accepted;
      next += std::chrono::duration_cast<Clock::duration>(interval);
      std::this_thread::sleep_until(next);
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(opt.seconds));
  changing = false;
  changer.join();
  const auto to = Clock::now();
  // Every change gets poll_interval plus a cycle and more to show.
  wait_until(
      [&] {
        std::lock_guard lock(mu);
        return std::all_of(changes.begin(), changes.end(),
                           [](const Change& c) { return c.seconds >= 0; });
      },
      std::chrono::seconds(120));
  watching = false;
  watcher.join();
  // The hints' work is done only when no refresh is pending any more.
  wait_until([&] { return runsync::bench::pending_refreshes(db) == 0; }, std::chrono::seconds(300));
  const auto drained = Clock::now();
  // Requests from the first change until the last was shown and nothing
  // was pending any more.
  auto until = std::max(to, drained);
  for (const Change& c : changes) {
    if (c.seconds >= 0) {
      until = std::max(until, c.at + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(c.seconds)));
    }
  }
  for (const auto& r : fake.requests()) {
    if (r.at >= from && r.at <= until) ++result.requests;
  }
  if (not_accepted > 0) result.ok = false;
  if (std::getenv("FRESHNESS_LOG")) std::fprintf(stderr, "%s\n", daemon.log().c_str());
  runsync::bench::stop(daemon, std::chrono::seconds(10));
  return result;
}

void print(const Result& r) {
  std::vector<double> hinted, unhinted;
  std::size_t unseen = 0;
  for (const Change& c : r.changes) {
    if (c.seconds < 0) {
      ++unseen;
      continue;
    }
    (c.hinted ? hinted : unhinted).push_back(c.seconds);
  }
  std::printf(
      "| %s | %d | %zu | %.2f s | %.2f s | %.2f s | %.1f s | %.1f s | %.1f s | %.2f | %zu |\n",
      r.binary.c_str(), r.rate, r.changes.size(), percentile(hinted, 0.5), percentile(hinted, 0.99),
      runsync::bench::max_of(hinted), percentile(unhinted, 0.5), percentile(unhinted, 0.99),
      runsync::bench::max_of(unhinted),
      r.changes.empty() ? 0.0
                        : static_cast<double>(r.requests) / static_cast<double>(r.changes.size()),
      unseen);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  const runsync::bench::Machine host = runsync::bench::machine();
  std::printf(
      "runsync_freshness_bench: %d active runs, max_requests_per_minute %d, poll_interval "
      "30s, %.0f%% of hints dropped, %d s per rate; host %s, %u cpus\n",
      opt.runs, opt.budget, opt.drop * 100, opt.seconds, host.host.c_str(), host.cpus);
  std::vector<std::string> binaries;
  if (!opt.baseline.empty()) binaries.push_back(opt.baseline);
  binaries.push_back(RUNSYNC_BINARY);
  std::printf(
      "| binary | changes/s | changes | hinted p50 | hinted p99 | hinted max | unhinted "
      "p50 | unhinted p99 | unhinted max | requests/change | never shown |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  bool ok = true;
  for (const std::string& binary : binaries) {
    for (int rate : opt.rates) {
      const Result r = measure(binary, rate, opt);
      ok = ok && r.ok;
      print(r);
    }
  }
  return ok ? 0 : 1;
}
