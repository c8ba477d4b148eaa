// Poll benchmark: a full sync of many runs from a local fake TestRail
// server, then a re-poll of the same, each by `runsync sync --full` as a
// child process. Prints runs applied per second of the daemon's CPU time
// and the rows the re-poll wrote (which must be 0). The re-poll is the
// baseline run in the same invocation: same listing, same parsing, no
// writes.
//
// Usage: runsync_poll_bench [--runs 100000] [--page 250] [--binary PATH] [--quick]
#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/cpu_time.h"
#include "bench/support/machine.h"
#include "bench/support/serve.h"

extern char** environ;

namespace {

struct ChildStats {
  int exit_code = -1;
  double wall = 0;
  double cpu = 0;  // user + system seconds of the child
  double sys = 0;  // of which system
  long max_rss_kb = 0;
  double steal_pct = -1;  // the machine's CPU time its hypervisor gave to others meanwhile
};

ChildStats run_child(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.emplace_back(runsync::bench::kSyncEnv);
  std::vector<char*> argv, envp;
  std::vector<std::string> a = args;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const auto t0 = std::chrono::steady_clock::now();
  const runsync::bench::MachineCpu machine_start = runsync::bench::machine_cpu();
  ChildStats st;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) return st;
  // Peak RSS from /proc while the child runs: rusage's ru_maxrss would also
  // count this process's memory, which posix_spawn's child shares until exec.
  int status = 0;
  rusage ru{};
  const std::string proc_status = "/proc/" + std::to_string(pid) + "/status";
  while (wait4(pid, &status, WNOHANG, &ru) == 0) {
    std::ifstream in(proc_status);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmHWM:", 0) == 0) st.max_rss_kb = std::max(st.max_rss_kb, std::atol(line.c_str() + 6));
    }
    usleep(20000);  // sampling interval, not a wait for a condition
  }
  st.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.steal_pct = runsync::bench::steal_percent(machine_start, runsync::bench::machine_cpu());
  st.sys = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  st.cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  st.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  posix_spawn_file_actions_destroy(&fa);
  return st;
}

std::int64_t scalar(const std::string& db, const std::string& sql) {
  SQLite::Database d(db, SQLite::OPEN_READONLY);
  return d.execAndGet(sql).getInt64();
}

constexpr const char* kUsage = "[--runs N] [--page N] [--binary PATH] [--quick]\n";

}  // namespace

int main(int argc, char** argv) {
  int runs = 100000;
  int page = 250;
  std::string binary = RUNSYNC_BINARY;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--quick")) {
      runs = 10000;
    } else if (args.is("--runs")) {
      runs = args.integer(1, 100000000);
    } else if (args.is("--binary")) {
      binary = args.text();
    } else if (args.is("--page")) {
      page = args.integer(1, 100000);
    } else {
      args.unknown();
    }
  }

  const std::string dir = runsync::bench::make_temp_dir("/tmp", "runsync_poll_bench_");
  if (dir.empty()) return 2;
  runsync::test::FakeTestRail::Options fo;
  fo.max_page_size = page;
  runsync::test::FakeTestRail fake(fo);
  fake.add_project(1);
  for (int i = 0; i < runs; ++i) {
    fake.add_run({{"project_id", 1},
                  {"name", "Nightly " + std::to_string(i)},
                  {"description", "Regression run for build " + std::to_string(i)},
                  {"suite_id", 1 + i % 7},
                  {"milestone_id", 1 + i % 13},
                  {"config", "Chrome, Linux"},
                  {"refs", "RS-" + std::to_string(i)},
                  {"is_completed", i % 3 == 0},
                  {"passed_count", i % 50},
                  {"failed_count", i % 7},
                  {"untested_count", 100 - i % 50}});
  }
  const std::string db = dir + "/mirror.db";
  const std::string config = dir + "/runsync.toml";
  std::ofstream(config) << runsync::bench::full_sync_config(db, fake.base_url());
  const std::vector<std::string> cmd = {binary, "sync", "--full", "--config", config};

  std::printf("runsync poll benchmark\n");
  std::printf("  date %s, %u cores, binary %s\n", runsync::bench::utc_now_text().c_str(),
              runsync::bench::machine().cpus, binary.c_str());
  std::printf("  %d runs in one project, %d per page (%d pages), fake server in this process,\n",
              runs, page, (runs + page - 1) / page);
  std::printf("  each row is `runsync sync --full` as a child; CPU is the child's user+system time;\n");
  std::printf("  database %s (synchronous=full)\n\n", db.c_str());

  const ChildStats first = run_child(cmd, dir + "/sync.log");
  const std::int64_t changes_after_first = scalar(db, "SELECT count(*) FROM run_changes");
  const std::int64_t rows = scalar(db, "SELECT count(*) FROM runs");
  const std::int64_t seq_after_first = scalar(db, "SELECT coalesce(max(change_seq), 0) FROM runs");
  const std::int64_t updated_after_first = scalar(db, "SELECT coalesce(max(updated_at), 0) FROM runs");
  fake.set_now(fake.now() + 3600);
  const ChildStats second = run_child(cmd, dir + "/sync.log");
  const std::int64_t changes_written = scalar(db, "SELECT count(*) FROM run_changes") - changes_after_first;
  const std::int64_t seq_moved = scalar(db, "SELECT coalesce(max(change_seq), 0) FROM runs") - seq_after_first;
  const std::int64_t rows_touched =
      scalar(db, "SELECT count(*) FROM runs WHERE updated_at > " + std::to_string(updated_after_first));

  std::printf("%-22s %6s %8s %8s %8s %12s %12s %9s %7s\n", "scenario", "exit", "wall s", "cpu s",
              "of sys", "runs/s wall", "runs/s cpu", "rss MB", "steal %");
  auto row = [&](const char* name, const ChildStats& s) {
    std::printf("%-22s %6d %8.2f %8.2f %8.2f %12.0f %12.0f %9.1f %7.1f\n", name, s.exit_code,
                s.wall, s.cpu, s.sys, runs / s.wall, runs / s.cpu, s.max_rss_kb / 1024.0,
                s.steal_pct);
  };
  row("full sync (first)", first);
  row("re-poll (baseline)", second);
  std::printf("\nmirrored runs: %lld of %d\n", static_cast<long long>(rows), runs);
  std::printf("re-poll wrote: %lld change-log rows, change_seq moved %lld, %lld runs rows rewritten\n",
              static_cast<long long>(changes_written), static_cast<long long>(seq_moved),
              static_cast<long long>(rows_touched));
  std::printf("first sync CPU over the re-poll baseline: %.2fx (the cost of writing)\n",
              first.cpu / second.cpu);
  std::printf("steal %% = the share of the machine's CPU time its hypervisor gave to others "
              "while the row ran (/proc/stat): rows with more of it ran on a slower machine\n");
  std::printf("target (issue #3, for information; set for 100000 runs, this run has %d): "
              "first sync >= 50000 runs per CPU second: %.0f %s\n",
              runs, runs / first.cpu, runs / first.cpu >= 50000 ? "met" : "MISSED");
  std::filesystem::remove_all(dir);
  const bool ok = first.exit_code == 0 && second.exit_code == 0 && rows == runs && changes_written == 0 &&
                  rows_touched == 0;
  if (!ok) std::printf("\nUNEXPECTED: see the exit codes and counts above\n");
  return ok ? 0 : 1;
}
