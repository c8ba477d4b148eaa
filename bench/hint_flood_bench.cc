// TestRail webhook hints under a flood: starts the real `runsync serve`
// binary against the fake TestRail with 100 runs, then
//   1. quiet: the same duration with polling only, as the baseline;
//   2. flood: hints at --rate per second (1,000 by default) spread over the
//      100 runs for --seconds, while the runs' counts keep changing in the
//      fake, as results arriving during a big test run would;
//   3. drain: how long until no refresh is pending and the mirror matches
//      the fake for every run;
//   4. spare budget: one hint at a time for 20 runs, each after a change,
//      spaced at twice the refresher's pace (three quarters of the
//      budget) so that none waits for it, and the time until the mirror
//      shows it.
// Prints the daemon's resident size (VmRSS every 250 ms, VmHWM), the
// pending refreshes (rows of pending_refreshes), the API requests by
// endpoint and in the busiest 60 s window against max_requests_per_minute,
// and the latencies. Performance is reported, never asserted: the exit
// status is non-zero only when something was wrong (the daemon did not
// start, a hint was not answered 202, the mirror never caught up).
//
// Usage: runsync_hint_flood_bench [--rate 1000] [--seconds 60] [--runs 100]
//          [--budget 120] [--window 2s]
// See bench/README.md.

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/machine.h"
#include "bench/support/serve.h"
#include "bench/support/stats.h"
#include "support/hostile_load.h"

namespace {

using Clock = std::chrono::steady_clock;
using runsync::bench::percentile;
using runsync::test::FakeTestRail;
using runsync::testing::ChildProcess;
using runsync::testing::TestHttpClient;
using runsync::testing::wait_until;

struct Options {
  int rate = 1000;
  int seconds = 60;
  int runs = 100;
  int budget = 120;
  std::string window = "2s";
};

constexpr const char* kUsage =
    "[--rate 1000] [--seconds 60] [--runs 100] [--budget 120] [--window 2s]\n";

Options parse(int argc, char** argv) {
  Options o;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--rate")) {
      o.rate = args.integer(1, 1000000);
    } else if (args.is("--seconds")) {
      o.seconds = args.integer(1, 1000000);
    } else if (args.is("--runs")) {
      o.runs = args.integer(1, 10000000);
    } else if (args.is("--budget")) {
      o.budget = args.integer(1, 1000000);
    } else if (args.is("--window")) {
      o.window = args.text();
    } else {
      args.unknown();
    }
  }
  return o;
}

struct Sample {
  long rss_kb = 0;
  std::int64_t pending = 0;
};

// Samples the daemon's RSS and pending refreshes every 250 ms until stopped.
class Sampler {
 public:
  Sampler(pid_t pid, std::string db) : pid_(pid), db_(std::move(db)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        Sample s;
        s.rss_kb = runsync::testing::proc_status_kb(pid_, "VmRSS");
        s.pending = runsync::bench::pending_refreshes(db_);
        {
          std::lock_guard lock(mu_);
          samples_.push_back(s);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    });
  }
  ~Sampler() { finish(); }
  std::vector<Sample> finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    return samples_;
  }

 private:
  pid_t pid_;
  std::string db_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Sample> samples_;
  std::thread thread_;
};

void report_samples(const char* phase, const std::vector<Sample>& samples) {
  long max_rss = 0;
  std::int64_t max_pending = 0;
  for (const Sample& s : samples) {
    max_rss = std::max(max_rss, s.rss_kb);
    max_pending = std::max(max_pending, s.pending);
  }
  std::printf("%-6s RSS max %.1f MB, last %.1f MB; pending refreshes max %lld, last %lld\n", phase,
              max_rss / 1024.0, samples.empty() ? 0.0 : samples.back().rss_kb / 1024.0,
              static_cast<long long>(max_pending),
              static_cast<long long>(samples.empty() ? 0 : samples.back().pending));
}

// Requests by endpoint since `from`, and the most in any 60 s window.
void report_requests(const char* phase, const FakeTestRail& fake, Clock::time_point from,
                     Clock::time_point to, int budget) {
  std::map<std::string, int> by_endpoint;
  std::vector<Clock::time_point> at;
  for (const auto& r : fake.requests()) {
    if (r.at < from || r.at > to) continue;
    ++by_endpoint[r.endpoint];
    at.push_back(r.at);
  }
  std::sort(at.begin(), at.end());
  std::size_t busiest = 0;
  for (std::size_t i = 0, j = 0; i < at.size(); ++i) {
    while (at[i] - at[j] >= std::chrono::seconds(60)) ++j;
    busiest = std::max(busiest, i - j + 1);
  }
  const double seconds = std::chrono::duration<double>(to - from).count();
  std::printf("%-6s API requests %zu in %.0f s (%.1f/min); busiest 60 s window %zu (budget %d):",
              phase, at.size(), seconds, static_cast<double>(at.size()) * 60.0 / seconds, busiest,
              budget);
  for (const auto& [endpoint, n] : by_endpoint) std::printf(" %s=%d", endpoint.c_str(), n);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  const runsync::bench::Machine host = runsync::bench::machine();
  std::printf(
      "runsync_hint_flood_bench: %d hints/s over %d runs for %d s, "
      "max_requests_per_minute %d, min_refresh_interval %s; host %s, %u cpus\n",
      opt.rate, opt.runs, opt.seconds, opt.budget, opt.window.c_str(), host.host.c_str(),
      host.cpus);

  FakeTestRail fake;
  const std::vector<std::int64_t> runs = runsync::bench::add_runs(fake, opt.runs);
  runsync::testing::TempDir dir;
  const std::string db = dir.file("mirror.db");
  const std::string config = runsync::bench::hinted_serve_config(
      dir, db, fake, opt.budget, "min_refresh_interval = \"" + opt.window + "\"\n");
  ChildProcess daemon({RUNSYNC_BINARY, "serve", "--config", config}, dir.file("serve.log"));
  const unsigned short port = runsync::bench::listen_port(daemon);
  if (port == 0) return 1;
  auto mirrored = [&](std::int64_t run, const std::string& column) -> std::string {
    try {
      SQLite::Database read(db, SQLite::OPEN_READONLY);
      SQLite::Statement st(read, "SELECT " + column + " FROM runs WHERE run_id = ?");
      st.bind(1, run);
      return st.executeStep() ? st.getColumn(0).getString() : "";
    } catch (const std::exception&) {
      return "";
    }
  };
  if (!wait_until([&] { return mirrored(runs.back(), "name") == "Run " + std::to_string(opt.runs - 1); },
                  std::chrono::seconds(30))) {
    std::fprintf(stderr, "first poll did not finish:\n%s\n", daemon.log().c_str());
    return 1;
  }

  // 1. Quiet: polling only.
  const auto quiet_from = Clock::now();
  {
    Sampler sampler(daemon.pid(), db);
    std::this_thread::sleep_for(std::chrono::seconds(opt.seconds));
    report_samples("quiet", sampler.finish());
  }
  report_requests("quiet", fake, quiet_from, Clock::now(), opt.budget);

  // 2. Flood.
  std::atomic<bool> flooding{true};
  std::atomic<std::int64_t> version{0};
  std::thread changer([&] {
    std::mt19937 rng(7);
    while (flooding) {
      const std::int64_t v = ++version;
      fake.set_now(fake.now() + 1);
      fake.update_run(runs[rng() % runs.size()], {{"passed_count", v}});
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  constexpr int kSenders = 4;
  std::atomic<long> sent{0};
  std::atomic<long> not_accepted{0};
  std::mutex ack_mu;
  std::vector<double> ack_ms;
  const auto flood_from = Clock::now();
  std::unique_ptr<Sampler> sampler = std::make_unique<Sampler>(daemon.pid(), db);
  std::vector<std::thread> senders;
  for (int t = 0; t < kSenders; ++t) {
    senders.emplace_back([&, t] {
      TestHttpClient client(port);
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      std::vector<double> mine;
      const auto interval = std::chrono::duration<double>(kSenders / static_cast<double>(opt.rate));
      const auto end = flood_from + std::chrono::seconds(opt.seconds);
      auto next = Clock::now();
      while (Clock::now() < end) {
        const std::int64_t run = runs[rng() % runs.size()];
        const auto start = Clock::now();
        const int status = runsync::bench::post_hint(client, run);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        ++sent;
        if (status != 202) ++not_accepted;
        next += std::chrono::duration_cast<Clock::duration>(interval);
        std::this_thread::sleep_until(next);
      }
      std::lock_guard lock(ack_mu);
      ack_ms.insert(ack_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& s : senders) s.join();
  flooding = false;
  changer.join();
  const auto flood_to = Clock::now();
  const double flood_s = std::chrono::duration<double>(flood_to - flood_from).count();
  std::printf("flood  %ld hints in %.1f s (%.0f/s), %ld not answered 202; answer p50 %.2f ms, "
              "p99 %.2f ms\n",
              sent.load(), flood_s, static_cast<double>(sent.load()) / flood_s,
              not_accepted.load(), percentile(ack_ms, 0.5), percentile(ack_ms, 0.99));

  // 3. Drain: nothing pending, and the mirror equal to the fake.
  bool caught_up = wait_until(
      [&] {
        for (std::int64_t run : runs) {
          const auto want = fake.run(run);
          if (!want) continue;
          if (mirrored(run, "passed_count") != std::to_string((*want)["passed_count"].get<std::int64_t>())) {
            return false;
          }
        }
        return runsync::bench::pending_refreshes(db) == 0;
      },
      std::chrono::seconds(600));
  const auto drained = Clock::now();
  report_samples("flood", sampler->finish());
  report_requests("flood", fake, flood_from, flood_to, opt.budget);
  report_requests("drain", fake, flood_to, drained, opt.budget);
  std::printf("drain  %s %.1f s after the last hint\n",
              caught_up ? "pending 0 and the mirror equal to the fake" : "NOT caught up",
              std::chrono::duration<double>(drained - flood_to).count());
  const long hwm = runsync::testing::proc_status_kb(daemon.pid(), "VmHWM");
  std::printf("daemon VmHWM %.1f MB\n", hwm / 1024.0);

  // 4. Spare budget: hint-to-mirror latency, once the flood's requests left the window.
  std::this_thread::sleep_for(std::chrono::seconds(61));
  std::vector<double> latency_ms;
  TestHttpClient client(port);
  bool followed = true;
  // The refresher paces itself at three quarters of the budget; a hint
  // every two of its intervals never waits for that pace.
  const auto spacing = std::chrono::milliseconds(2 * 60000 * 4 / (3 * opt.budget));
  auto next_hint = Clock::now();
  for (int i = 0; i < 20 && i < opt.runs; ++i) {
    std::this_thread::sleep_until(next_hint);
    next_hint = Clock::now() + spacing;
    const std::int64_t run = runs[static_cast<std::size_t>(i)];
    const std::int64_t v = 1000000 + i;
    fake.set_now(fake.now() + 1);
    fake.update_run(run, {{"passed_count", v}});
    const auto start = Clock::now();
    if (runsync::bench::post_hint(client, run) != 202 ||
        !wait_until([&] { return mirrored(run, "passed_count") == std::to_string(v); },
                    std::chrono::seconds(10))) {
      followed = false;
      break;
    }
    latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::printf("spare  hint to mirror over %zu runs: p50 %.1f ms, max %.1f ms\n", latency_ms.size(),
              percentile(latency_ms, 0.5), runsync::bench::max_of(latency_ms));
  runsync::bench::stop(daemon, std::chrono::seconds(10));
  return caught_up && followed && not_accepted == 0 ? 0 : 1;
}
