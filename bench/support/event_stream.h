// A deterministic stream of realistic webhook bodies, and delivery keys
// for them, shared by the benchmarks that feed runsync webhook events.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

namespace runsync::bench {

// A deterministic stream of webhook bodies. `runs` runs are in flight at a
// time; event k goes to run (k mod runs) of the current generation, so one
// run's events are `runs` events apart (as from many CI pipelines at once)
// and its timestamps rise. A run gets `events_per_run` events: started,
// updated..., report_changed, then completed (1 in 8: aborted). Then the
// next generation of runs (new ids) begins. Every body is unique (run id and
// phase differ), so none is deduplicated.
class EventStream {
 public:
  EventStream(int runs, int events_per_run, std::int64_t base_ts)
      : runs_(runs), per_run_(events_per_run), base_ts_(base_ts) {}

  // Appends the next body to `out` (which is cleared first).
  void next(std::string& out) {
    const std::uint64_t k = k_++;
    const std::uint64_t slot = k % runs_;
    const std::uint64_t generation = k / (static_cast<std::uint64_t>(runs_) * per_run_);
    const int phase = static_cast<int>((k / runs_) % per_run_);
    const std::int64_t run_id = 1 + static_cast<std::int64_t>(slot + generation * runs_);
    const std::int64_t ts = base_ts_ + static_cast<std::int64_t>(k / 64);
    const std::uint64_t h = mix(static_cast<std::uint64_t>(run_id));
    const std::uint64_t hk = mix(k + 0x9e3779b97f4a7c15ULL);
    static const char* const kProjects[] = {"WEB", "API", "MOB", "ID"};
    static const char* const kEnvs[] = {"\"staging\"", "\"production\"", "null", "\"qa-eu\""};
    const char* project = kProjects[h % 4];
    const int member = static_cast<int>(10 + h % 90);
    const int cases = static_cast<int>(20 + h % 480);
    char buf[768];
    int n = 0;
    if (phase == 0) {
      char plan[96];
      if (h % 3 == 0) {
        std::snprintf(plan, sizeof plan, "null");
      } else {
        std::snprintf(plan, sizeof plan, "{\"id\":%d,\"title\":\"Release 4.%d\"}",
                      static_cast<int>(100 + h % 50), static_cast<int>(h % 50));
      }
      n = std::snprintf(
          buf, sizeof buf,
          "{\"event_name\":\"run.started\",\"timestamp\":%" PRId64
          ",\"payload\":{\"id\":%" PRId64
          ",\"title\":\"Nightly regression %" PRId64 " (build %d)\","
          "\"description\":\"Automated run started by CI pipeline #%d on branch main\","
          "\"plan\":%s,\"cases_count\":%d,\"environment\":%s},"
          "\"team_member_id\":%d,\"project_code\":\"%s\"}",
          ts, run_id, run_id, static_cast<int>(h % 100000), static_cast<int>(hk % 1000000), plan,
          cases, kEnvs[(h >> 8) % 4], member, project);
    } else if (phase == per_run_ - 1) {
      const bool aborted = h % 8 == 0;
      const int passed = static_cast<int>(hk % (cases + 1));
      const int failed = static_cast<int>((hk >> 16) % (cases - passed + 1));
      const int blocked = static_cast<int>((hk >> 32) % (cases - passed - failed + 1));
      const int untested = cases - passed - failed - blocked;
      n = std::snprintf(buf, sizeof buf,
                        "{\"event_name\":\"%s\",\"timestamp\":%" PRId64
                        ",\"payload\":{\"id\":%" PRId64
                        ",\"cases\":%d,\"passed\":%d,\"failed\":%d,\"blocked\":%d,"
                        "\"untested\":%d,\"skipped\":0,\"duration\":%d},"
                        "\"team_member_id\":%d,\"project_code\":\"%s\"}",
                        aborted ? "run.aborted" : "run.completed", ts, run_id, cases, passed,
                        failed, blocked, untested, static_cast<int>(hk % 3600000), member,
                        project);
    } else if (phase == per_run_ - 2 && per_run_ >= 4) {
      n = std::snprintf(buf, sizeof buf,
                        "{\"event_name\":\"run.report_changed\",\"timestamp\":%" PRId64
                        ",\"payload\":{\"id\":%" PRId64 ",\"visible\":%s},"
                        "\"team_member_id\":%d,\"project_code\":\"%s\"}",
                        ts, run_id, hk % 4 ? "true" : "false", member, project);
    } else {
      n = std::snprintf(buf, sizeof buf,
                        "{\"event_name\":\"run.updated\",\"timestamp\":%" PRId64
                        ",\"payload\":{\"id\":%" PRId64 ",\"cases_count\":%d},"
                        "\"team_member_id\":%d,\"project_code\":\"%s\"}",
                        ts, run_id, cases + phase * static_cast<int>(hk % 7), member, project);
    }
    out.assign(buf, static_cast<std::size_t>(n));
  }

 private:
  static std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
  }

  std::uint64_t runs_;
  int per_run_;
  std::int64_t base_ts_;
  std::uint64_t k_ = 0;
};

// The `k`th of a deterministic series of delivery keys shaped like the
// daemon's ("sha256:" and 64 hex digits) and as random, so that the
// journal's unique index sees the same spread.
std::string delivery_key(std::uint64_t k);

}  // namespace runsync::bench
