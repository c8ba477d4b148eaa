// The writer's cost per webhook event, without HTTP: realistic deliveries
// applied through Store as the Writer does (one transaction per batch), on
// a real database file, with the
// Checkpointer beside it as in `runsync serve`.
//
// Prints CPU microseconds per event of the writing thread (and of the
// checkpointer) and events per second.
// The baseline in the same invocation is batch = 1 (one transaction per
// event). Deterministic input, so it also runs under
// `valgrind --tool=callgrind` for instruction counts (--events small).
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/support/args.h"
#include "bench/support/cpu_time.h"
#include "bench/support/event_stream.h"
#include "core/webhook_event.h"
#include "storage/checkpointer.h"
#include "storage/store.h"
#include "storage/write_gate.h"

namespace {

namespace fs = std::filesystem;
using runsync::Status;
using runsync::bench::process_cpu_seconds;

struct Options {
  int events = 200000;
  int warmup = 20000;
  int runs = 10000;
  int events_per_run = 6;
  std::vector<int> batches{20, 1};
  std::string dir = "/dev/shm";
  std::string sync = "full";
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::vector<runsync::WebhookDelivery> make_deliveries(const Options& opt, int count) {
  runsync::bench::EventStream stream(opt.runs, opt.events_per_run, 1'760'000'000);
  std::vector<runsync::WebhookDelivery> out;
  out.reserve(static_cast<std::size_t>(count));
  std::string body;
  for (int k = 0; k < count; ++k) {
    stream.next(body);
    auto parsed = runsync::parse_webhook_event(body);
    if (!parsed) {
      std::fprintf(stderr, "store_bench: generated body does not parse: %s\n",
                   parsed.message().c_str());
      std::exit(2);
    }
    runsync::WebhookDelivery d;
    d.delivery_key = runsync::bench::delivery_key(static_cast<std::uint64_t>(k));
    d.received_at = 1'760'000'000 + k / 1000;
    d.event = std::move(parsed).value();
    d.body = body;
    out.push_back(std::move(d));
  }
  return out;
}

struct Result {
  double cpu_us_per_event = 0;   // the writing thread
  double ckpt_us_per_event = 0;  // everything else in the process (checkpointer)
  double events_per_s = 0;
};

// Applies deliveries [from, to) in batches as Writer::run_batch does when
// no job fails (no savepoints), each transaction inside the checkpointer's
// gate.
void apply(runsync::Store& store, runsync::WriteGate& gate,
           const std::vector<runsync::WebhookDelivery>& all, int from, int to, int batch) {
  for (int i = from; i < to; i += batch) {
    const int end = std::min(to, i + batch);
    gate.enter();
    if (Status s = store.begin(); !s.is_ok()) {
      std::fprintf(stderr, "store_bench: %s\n", s.message().c_str());
      std::exit(2);
    }
    for (int j = i; j < end; ++j) {
      auto r = store.journal().apply(all[static_cast<std::size_t>(j)]);
      const Status s = r ? Status::ok() : r.status();
      if (!s.is_ok()) {
        std::fprintf(stderr, "store_bench: delivery %d: %s\n", j, s.message().c_str());
        std::exit(2);
      }
    }
    if (Status s = store.commit(); !s.is_ok()) {
      std::fprintf(stderr, "store_bench: commit: %s\n", s.message().c_str());
      std::exit(2);
    }
    gate.leave();
  }
}

Result run(const Options& opt, const std::vector<runsync::WebhookDelivery>& all, int batch) {
  const fs::path dir = fs::path(opt.dir) / ("runsync-store-bench-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path db = dir / "runsync.db";
  runsync::OpenOptions oo;
  oo.durability =
      opt.sync == "normal" ? runsync::Durability::kNormal : runsync::Durability::kFull;
  oo.auto_checkpoint = false;
  auto store = runsync::Store::open(db.string(), oo);
  if (!store) {
    std::fprintf(stderr, "store_bench: %s\n", store.message().c_str());
    std::exit(2);
  }
  auto gate = std::make_shared<runsync::WriteGate>();
  runsync::Checkpointer::Options co;
  co.gate = gate;
  auto ckpt = runsync::Checkpointer::start(db.string(), co);
  if (!ckpt) {
    std::fprintf(stderr, "store_bench: %s\n", ckpt.message().c_str());
    std::exit(2);
  }
  apply(**store, *gate, all, 0, opt.warmup, batch);
  const double t0 = thread_cpu_seconds();
  const double p0 = process_cpu_seconds();
  const auto w0 = std::chrono::steady_clock::now();
  apply(**store, *gate, all, opt.warmup, opt.warmup + opt.events, batch);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  const double cpu = thread_cpu_seconds() - t0;
  const double other = process_cpu_seconds() - p0 - cpu;
  Result r;
  r.cpu_us_per_event = cpu * 1e6 / opt.events;
  r.ckpt_us_per_event = other * 1e6 / opt.events;
  r.events_per_s = opt.events / wall;
  ckpt->reset();
  store->reset();
  fs::remove_all(dir);
  return r;
}

constexpr const char* kUsage =
    "[--events N] [--warmup N] [--runs N] [--batches 20,1] [--dir DIR]\n"
    "          [--sync full|normal]\n"
    "  applies N realistic webhook deliveries through Store in batches, on a\n"
    "  database under DIR (default /dev/shm: the CPU cost, no flush waits)\n";

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  runsync::bench::Args args(argc, argv, kUsage);
  while (args.next()) {
    if (args.is("--events")) {
      opt.events = args.integer(1, 1000000000);
    } else if (args.is("--warmup")) {
      opt.warmup = args.integer(0, 1000000000);
    } else if (args.is("--runs")) {
      opt.runs = args.integer(1, 1000000000);
    } else if (args.is("--batches")) {
      opt.batches = args.list(1, 1000000);
    } else if (args.is("--dir")) {
      opt.dir = args.text();
    } else if (args.is("--sync")) {
      opt.sync = args.text();
      if (opt.sync != "full" && opt.sync != "normal") args.fail("--sync is full or normal");
    } else {
      args.unknown();
    }
  }
  if (opt.batches.empty()) args.fail("--batches needs at least one batch size");
  const auto all = make_deliveries(opt, opt.warmup + opt.events);
  std::printf("store bench: %d events after %d warm-up, %d runs in flight, %d events per run,\n"
              "  database under %s, synchronous=%s, checkpointer every 250 ms (as serve)\n\n",
              opt.events, opt.warmup, opt.runs, opt.events_per_run, opt.dir.c_str(),
              opt.sync.c_str());
  std::printf("%-28s %10s %14s %14s\n", "scenario", "events/s", "writer us/ev", "ckpt us/ev");
  for (int b : opt.batches) {
    const Result r = run(opt, all, b);
    const std::string name =
        b == 1 ? "baseline: batch 1" : "batch " + std::to_string(b) + " (group commit)";
    std::printf("%-28s %10.0f %14.2f %14.2f\n", name.c_str(), r.events_per_s,
                r.cpu_us_per_event, r.ckpt_us_per_event);
    std::fflush(stdout);
  }
  return 0;
}
