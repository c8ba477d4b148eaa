// Listener under hostile load: starts the real `runsync serve` binary with a
// shared secret, then opens N connections at once (2,000 by default), each
// sending a 1 MB body with a wrong X-Qase-Secret — all of it, even after
// the answer has come, as a client that writes its whole body before
// reading (Python's http.client) would — for several waves. Meanwhile a
// normal client posts valid events over one keep-alive connection opened
// before the load, and another asks GET /healthz over a new connection each
// time (which waits in the listen backlog behind the hostile ones while
// webhook.max_connections are open).
//
// Prints the daemon's resident size (VmRSS sampled every 10 ms, and VmHWM,
// both from /proc/<pid>/status), what the hostile clients were answered,
// and the normal clients' latencies. Performance is reported, never
// asserted: the exit status is non-zero only when something was wrong (the
// daemon did not start or stop, a normal request failed, a hostile client
// saw a reset instead of its answer).
//
// With --trickle N it measures the other attack instead: N connections
// (1,100 by default) that send their header one byte a second, each
// reconnecting once the daemon closes it, against the default
// max_connections (1,024) and min_request_rate. An authenticated sender
// posts valid events, each over a new connection, first for --seconds
// without the attack (the baseline), then for --seconds with it; its
// latencies in both are printed, with how many trickling connections the
// daemon closed.
//
// Usage: runsync_listener_bench [--connections 2000] [--body 1048576]
//          [--waves 3] [--binary PATH]
//        runsync_listener_bench --trickle 1100 [--seconds 30] [--binary PATH]
// See bench/README.md.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/machine.h"
#include "bench/support/serve.h"
#include "bench/support/stats.h"
#include "support/hostile_load.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using runsync::testing::ChildProcess;
using runsync::testing::TestHttpClient;

struct Latencies {
  std::vector<double> ms;
  std::size_t failed = 0;
  std::string first_failure;

  std::string summary() const {
    if (ms.empty()) return "no answers";
    char line[200];
    std::snprintf(line, sizeof line, "%zu answered, p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                  ms.size(), runsync::bench::percentile(ms, 0.5),
                  runsync::bench::percentile(ms, 0.99), runsync::bench::max_of(ms));
    return line;
  }
};

// Connections that send a never-ending header one byte a second each;
// one the daemon closes is opened again on the next tick.
class Tricklers {
 public:
  Tricklers(unsigned short port, std::size_t n) : port_(port), fds_(n, -1), sent_(n, 0) {}
  ~Tricklers() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }

  // One byte on every connection; opens the closed ones.
  void tick() {
    static const std::string kHeader =
        "POST /webhook HTTP/1.1\r\nHost: t\r\nX-Qase-Secret: wrong\r\nX-Padding: ";
    for (std::size_t i = 0; i < fds_.size(); ++i) {
      int& fd = fds_[i];
      if (fd >= 0) {
        char byte;
        const ssize_t got = ::recv(fd, &byte, 1, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)) {
          ::close(fd);
          fd = -1;
          ++closed_;
        }
      }
      if (fd < 0) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port_);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // completes later
        sent_[i] = 0;
        ++opened_;
        continue;
      }
      const char next = sent_[i] < kHeader.size() ? kHeader[sent_[i]] : 'a';
      if (::send(fd, &next, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++sent_[i];
    }
  }

  std::size_t opened() const { return opened_; }
  std::size_t closed() const { return closed_; }

 private:
  unsigned short port_;
  std::vector<int> fds_;
  std::vector<std::size_t> sent_;
  std::size_t opened_ = 0;
  std::size_t closed_ = 0;
};

// Valid events, each POSTed over a new connection, for `seconds`.
Latencies authenticated_sender(unsigned short port, std::chrono::seconds seconds, int first_id) {
  Latencies out;
  const auto until = Clock::now() + seconds;
  for (int i = first_id; Clock::now() < until; ++i) {
    TestHttpClient client(port);
    const std::string event = R"({"event_name":"run.started","timestamp":1650540069,)"
                              R"("payload":{"id":)" +
                              std::to_string(i) + R"(},"project_code":"ID"})";
    const auto t0 = Clock::now();
    auto r = client.post("/webhook", event, {{"X-Qase-Secret", "s3cret"}, {"Connection", "close"}});
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (r.status == 200) {
      out.ms.push_back(ms);
    } else if (out.failed++ == 0) {
      out.first_failure = std::to_string(r.status) + " " + r.error + r.body;
    }
  }
  return out;
}

// The value of a metric series in the daemon's /metrics, or -1.
double scrape(unsigned short port, const std::string& series) {
  TestHttpClient client(port);
  return runsync::bench::metric_value(client.get("/metrics").body, series);
}

constexpr const char* kUsage =
    "[--connections 2000] [--body 1048576] [--waves 3] [--binary PATH]\n"
    "       runsync_listener_bench --trickle 1100 [--seconds 30] [--binary PATH]\n";

}  // namespace

int main(int argc, char** argv) {
  std::size_t connections = 2000;
  std::size_t body = 1024 * 1024;
  int waves = 3;
  std::size_t trickle = 0;
  int seconds_each = 30;
  std::string binary = RUNSYNC_BINARY;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--connections")) {
      connections = static_cast<std::size_t>(args.integer(1, 1000000));
    } else if (args.is("--body")) {
      body = static_cast<std::size_t>(args.integer(0, 1 << 30));
    } else if (args.is("--waves")) {
      waves = args.integer(1, 1000000);
    } else if (args.is("--binary")) {
      binary = args.text();
    } else if (args.is("--trickle")) {
      trickle = static_cast<std::size_t>(args.integer(1, 1000000));
    } else if (args.is("--seconds")) {
      seconds_each = args.integer(1, 1000000);
    } else {
      args.unknown();
    }
  }

  // This process holds one socket per hostile connection.
  rlimit fds{};
  getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = fds.rlim_max;
  setrlimit(RLIMIT_NOFILE, &fds);

  runsync::testing::TempDir dir;
  const std::string secret_file = dir.write("secret", "s3cret\n");
  const std::string config = dir.write(
      "runsync.toml", "[storage]\npath = \"" + dir.file("runsync.db") +
                          "\"\n[webhook]\nlisten = \"127.0.0.1:0\"\nsecret_file = \"" +
                          secret_file + "\"\n[log]\nlevel = \"info\"\n");
  std::unique_ptr<ChildProcess> daemon;
  try {
    daemon = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary, "serve", "--config", config}, dir.file("daemon.log"),
        std::vector<std::string>{}, std::vector<std::string>{"NOTIFY_SOCKET", "WATCHDOG_USEC"});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cannot start %s: %s\n", binary.c_str(), e.what());
    return 1;
  }
  const unsigned short port = runsync::bench::listen_port(*daemon);
  if (port == 0) return 1;
  const pid_t pid = daemon->pid();

  const runsync::bench::Machine host = runsync::bench::machine();
  std::printf("runsync_listener_bench: %s, %u CPUs, load %.2f; binary %s\n", host.kernel.c_str(),
              host.cpus, host.load[0], binary.c_str());
  if (trickle > 0) {
    std::printf(
        "load: an authenticated sender, a new connection per valid POST, %d s alone, "
        "then %d s beside %zu connections sending their header at 1 byte/s (each "
        "reopened once closed); webhook.max_connections and min_request_rate default; "
        "this process's fd limit %llu\n",
        seconds_each, seconds_each, trickle, static_cast<unsigned long long>(fds.rlim_cur));
    const long idle_kb = runsync::testing::proc_status_kb(pid, "VmRSS");
    const Latencies baseline =
        authenticated_sender(port, std::chrono::seconds(seconds_each), 100000);
    std::atomic<bool> attacking{true};
    Tricklers tricklers(port, trickle);
    long max_rss_kb = idle_kb;
    std::thread attack([&] {
      for (auto next = Clock::now(); attacking; next += std::chrono::seconds(1)) {
        tricklers.tick();
        max_rss_kb = std::max(max_rss_kb, runsync::testing::proc_status_kb(pid, "VmRSS"));
        std::this_thread::sleep_until(next + std::chrono::seconds(1));
      }
    });
    // Let the attack fill the listener before measuring.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const Latencies attacked =
        authenticated_sender(port, std::chrono::seconds(seconds_each), 200000);
    attacking = false;
    attack.join();
    const double slow = scrape(port, R"(runsync_http_connections_shed_total{reason="slow"})");
    const double at_cap = scrape(port, R"(runsync_http_connections_shed_total{reason="at_cap"})");
    std::printf("baseline, no attack: %s; %zu failed%s%s\n", baseline.summary().c_str(),
                baseline.failed, baseline.failed ? ", first: " : "",
                baseline.first_failure.c_str());
    std::printf("under the trickle: %s; %zu failed%s%s\n", attacked.summary().c_str(),
                attacked.failed, attacked.failed ? ", first: " : "",
                attacked.first_failure.c_str());
    std::printf(
        "trickling connections: %zu opened, %zu seen closed by the daemon; daemon shed "
        "%.0f as too slow, %.0f to make room at max_connections\n",
        tricklers.opened(), tricklers.closed(), slow, at_cap);
    std::printf("daemon RSS: %.1f MB idle, %.1f MB max sampled during the attack\n",
                idle_kb / 1024.0, max_rss_kb / 1024.0);
    bool failed = baseline.failed > 0 || attacked.failed > 0 || attacked.ms.empty();
    if (!runsync::bench::stop(*daemon, std::chrono::seconds(10))) {
      std::fprintf(stderr, "the daemon did not exit 0 after SIGTERM\n");
      failed = true;
    }
    return failed ? 1 : 0;
  }
  std::printf("load: %zu connections at once x %d waves, each a %zu-byte body with a wrong "
              "X-Qase-Secret, sent in full even after the answer; webhook.max_connections default; "
              "this process's fd limit %llu\n",
              connections, waves, body, static_cast<unsigned long long>(fds.rlim_cur));
  const long idle_kb = runsync::testing::proc_status_kb(pid, "VmRSS");

  std::atomic<bool> loading{true};
  Latencies keep_alive;
  Latencies fresh;
  std::thread normal([&] {
    TestHttpClient client(port);
    for (int i = 0; loading; ++i) {
      const std::string event = R"({"event_name":"run.started","timestamp":1650540069,)"
                                R"("payload":{"id":)" + std::to_string(100000 + i) +
                                R"(},"project_code":"ID"})";
      const auto t0 = Clock::now();
      auto r = client.post("/webhook", event, {{"X-Qase-Secret", "s3cret"}});
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (r.status == 200) {
        keep_alive.ms.push_back(ms);
      } else if (keep_alive.failed++ == 0) {
        keep_alive.first_failure = std::to_string(r.status) + " " + r.error + r.body;
      }
    }
  });
  std::thread newcomer([&] {
    while (loading) {
      TestHttpClient once(port);
      const auto t0 = Clock::now();
      auto h = once.get("/healthz");
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (h.status == 200) {
        fresh.ms.push_back(ms);
      } else if (fresh.failed++ == 0) {
        fresh.first_failure = std::to_string(h.status) + " " + h.error;
      }
    }
  });

  const std::string head =
      "POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
      "X-Qase-Secret: wrong\r\nContent-Length: " + std::to_string(body) + "\r\n\r\n";
  long max_rss_kb = idle_kb;
  bool problems = false;
  const auto t0 = Clock::now();
  for (int w = 0; w < waves; ++w) {
    const auto wave_start = Clock::now();
    const auto r = runsync::testing::run_hostile_load(
        port, connections, head, body, std::chrono::seconds(120), [&] {
          max_rss_kb = std::max(max_rss_kb, runsync::testing::proc_status_kb(pid, "VmRSS"));
        });
    std::string statuses;
    for (const auto& [code, n] : r.statuses) {
      statuses += (statuses.empty() ? "" : ", ") + std::to_string(n) + " x " + std::to_string(code);
    }
    std::printf("wave %d: %.1f s; answered %zu (%s), %zu before their whole body was sent; "
                "%zu reset, %zu unfinished\n",
                w + 1, std::chrono::duration<double>(Clock::now() - wave_start).count(), r.answered,
                statuses.c_str(), r.body_incomplete, r.reset, r.unfinished);
    problems = problems || r.reset > 0 || r.unfinished > 0;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  loading = false;
  normal.join();
  newcomer.join();
  const long hwm_kb = runsync::testing::proc_status_kb(pid, "VmHWM");
  const long after_kb = runsync::testing::proc_status_kb(pid, "VmRSS");

  std::printf("daemon RSS: %.1f MB idle, %.1f MB max sampled during the load, VmHWM %.1f MB, "
              "%.1f MB after (%.1f s of load)\n",
              idle_kb / 1024.0, max_rss_kb / 1024.0, hwm_kb / 1024.0, after_kb / 1024.0, seconds);
  std::printf("normal client, valid POST over one keep-alive connection: %s; %zu failed%s%s\n",
              keep_alive.summary().c_str(), keep_alive.failed,
              keep_alive.failed ? ", first: " : "", keep_alive.first_failure.c_str());
  std::printf("normal client, GET /healthz over a new connection: %s; %zu failed%s%s\n",
              fresh.summary().c_str(), fresh.failed, fresh.failed ? ", first: " : "",
              fresh.first_failure.c_str());
  problems = problems || keep_alive.failed > 0 || fresh.failed > 0 || keep_alive.ms.empty();

  if (!runsync::bench::stop(*daemon, std::chrono::seconds(10))) {
    std::fprintf(stderr, "the daemon did not exit 0 after SIGTERM\n");
    problems = true;
  }
  return problems ? 1 : 0;
}
