// A randomized model-based test of the mirror (SPEC §6): an upstream model
// of many runs living random lives, told to runsync by webhooks that are
// dropped, duplicated, reordered and partly sent by a sender whose clock
// runs ahead, and by polls of the fake TestRail that meet 500s, 429s and
// truncated bodies. Once the faults stop and one clean full sync ran,
// every run in the mirror must equal the model.
//
// Built on the real Store, Reconciler, Writer, TestRailClient and Poller,
// with the fake TestRail over loopback. The client's waits (backoff,
// Retry-After) pass at once on a clock of their own.
//
// Each run prints its seed; RUNSYNC_MODEL_SEED=<seed> replays one.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "core/webhook_event.h"
#include "daemon/http/http_client.h"
#include "daemon/testrail/poller.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "support/events.h"
#include "support/fake_clock.h"
#include "support/fake_testrail.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using nlohmann::json;
using runsync::test::FakeTestRail;
using runsync::testing::FakeClock;
using runsync::testing::TempDir;

std::uint64_t model_seed() {
  if (const char* env = std::getenv("RUNSYNC_MODEL_SEED"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 10);
  }
  return std::random_device{}();
}

enum class Life { kActive, kCompleted, kAborted, kDeleted };

// One run as TestRail holds it.
struct ModelRun {
  std::int64_t id = 0;
  std::string name;
  std::int64_t cases = 0;
  std::int64_t passed = 0;
  std::int64_t failed = 0;
  std::int64_t untested = 0;
  bool report = false;
  Life life = Life::kActive;
  bool abort_delivered = false;  // a copy of its run.aborted reached runsync
};

// A webhook on its way: the body and how many copies will arrive.
struct InFlight {
  std::string body;
  std::int64_t run_id = 0;
  bool is_abort = false;
};

class MirrorModel : public ::testing::Test {
 protected:
  static constexpr int kSteps = 1500;
  static constexpr std::size_t kMaxRuns = 80;  // alive at once
  static constexpr std::int64_t kProject = 1;

  void SetUp() override {
    seed_ = model_seed();
    std::cout << "[ model ] seed " << seed_ << " (replay: RUNSYNC_MODEL_SEED=" << seed_ << ")"
              << std::endl;
    RecordProperty("seed", std::to_string(seed_));
    rng_.seed(seed_);
    fake_.add_project(kProject);
    fake_.set_now(now());
    OpenOptions open;
    open.durability = Durability::kNormal;
    auto store = Store::open(dir_.file("mirror.db"), open);
    ASSERT_TRUE(store.is_ok()) << store.message();
    writer_ = std::make_unique<Writer>(std::move(store).value(), Writer::Options{});
    TestRailClientOptions copts = fake_.client_options();
    copts.max_read_attempts = 3;
    copts.jitter_seed = seed_ | 1;
    client_ = std::make_unique<TestRailClient>(copts, http_, client_clock_);
    PollerOptions popts;
    popts.projects = {{kProject, "ID"}};
    poller_ = std::make_unique<Poller>(popts, *client_, *writer_, metrics_, null_logger(), clock_);
  }

  // Moves the local clock on by `seconds`.
  void pass(std::int64_t seconds) { clock_.set_unix_seconds(now() + seconds); }
  // The local clock's wall time, in seconds.
  std::int64_t now() const { return clock_.unix_seconds(); }

  void TearDown() override {
    if (writer_) writer_->stop();
  }

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }

  // --- upstream ---------------------------------------------------------------

  // What the sender says happened at the current time; one in five events
  // comes from a sender whose clock runs ahead.
  void send(const ModelRun& run, const std::string& name, const std::string& payload) {
    std::int64_t ts = now();
    if (chance(0.2)) ts += std::vector<std::int64_t>{30, 3600, 86400}[uniform(0, 2)];
    const std::string body = testing::webhook_body(name, run.id, ts, payload);
    // Dropped, delivered once, or delivered twice (a retry).
    const int copies = chance(0.15) ? 0 : chance(0.15) ? 2 : 1;
    for (int i = 0; i < copies; ++i) in_flight_.push_back({body, run.id, name == "run.aborted"});
    ++sent_;
  }

  void push_counts(const ModelRun& run) {
    fake_.update_run(run.id, {{"name", run.name},
                              {"passed_count", run.passed},
                              {"failed_count", run.failed},
                              {"untested_count", run.untested}});
  }

  std::string counts_payload(const ModelRun& run) {
    return R"(,"cases":)" + std::to_string(run.cases) + R"(,"passed":)" +
           std::to_string(run.passed) + R"(,"failed":)" + std::to_string(run.failed) +
           R"(,"untested":)" + std::to_string(run.untested);
  }

  // One thing happens upstream.
  void upstream_step() {
    std::vector<ModelRun*> alive;
    for (auto& [id, run] : runs_) {
      if (run.life != Life::kDeleted) alive.push_back(&run);
    }
    const int action = static_cast<int>(uniform(0, 9));
    if (alive.empty() || (action <= 1 && alive.size() < kMaxRuns)) {
      ModelRun run;
      run.id = static_cast<std::int64_t>(runs_.size()) + 1;
      run.name = "run " + std::to_string(run.id);
      run.cases = uniform(1, 20);
      run.untested = run.cases;
      fake_.add_run({{"id", run.id},
                     {"project_id", kProject},
                     {"name", run.name},
                     {"untested_count", run.untested}});
      send(run, "run.started",
           R"(,"title":")" + run.name + R"(","cases_count":)" + std::to_string(run.cases));
      runs_[run.id] = run;
      return;
    }
    // Deletions often hit the newest run (made by mistake, removed at once),
    // before any poll has seen it.
    ModelRun& run = action >= 8 && chance(0.5)
                        ? *alive.back()
                        : *alive[uniform(0, static_cast<std::int64_t>(alive.size()) - 1)];
    const bool active = run.life == Life::kActive;
    switch (action) {
      case 2:
      case 3:  // results come in
        if (active && run.untested > 0) {
          const std::int64_t n = uniform(1, run.untested);
          const std::int64_t passed = uniform(0, n);
          run.passed += passed;
          run.failed += n - passed;
          run.untested -= n;
          push_counts(run);
        }
        break;
      case 4:  // cases added
        if (active) {
          const std::int64_t n = uniform(1, 5);
          run.cases += n;
          run.untested += n;
          push_counts(run);
          send(run, "run.updated", R"(,"cases_added":)" + std::to_string(n));
        }
        break;
      case 5:  // renamed (only a poll tells)
        run.name = "run " + std::to_string(run.id) + " v" + std::to_string(uniform(2, 999));
        push_counts(run);
        break;
      case 6:  // report shown or hidden
        run.report = !run.report;
        send(run, "run.report_changed", run.report ? R"(,"visible":true)" : R"(,"visible":false)");
        break;
      case 7:  // completed or aborted
        if (active) {
          run.life = chance(0.5) ? Life::kCompleted : Life::kAborted;
          fake_.update_run(run.id, {{"is_completed", true}, {"completed_on", now()}});
          send(run, run.life == Life::kCompleted ? "run.completed" : "run.aborted",
               counts_payload(run));
        }
        break;
      default:  // deleted
        if (chance(0.3)) {
          run.life = Life::kDeleted;
          fake_.remove_run(run.id);
          send(run, "run.deleted", "");
        }
        break;
    }
  }

  // --- runsync's side ---------------------------------------------------------

  // Delivers one webhook as the listener does; every valid event must be
  // stored (SPEC §6 rule 5), so an error fails the test.
  void deliver(const InFlight& w) {
    WebhookDelivery d = testing::delivery(w.body, now());
    d.event.observation.set(Field::kProjectId, Value{kProject});
    const Status s = writer_->run([&](Store& store) { return store.journal().apply(d).status(); });
    ASSERT_TRUE(s.is_ok()) << "not stored: " << s.message() << ": " << w.body;
    if (w.is_abort) runs_[w.run_id].abort_delivered = true;
    ++delivered_;
  }

  // Delivers some of the webhooks in flight, in random order.
  void deliver_some(bool all) {
    std::shuffle(in_flight_.begin(), in_flight_.end(), rng_);
    const std::size_t n =
        all ? in_flight_.size()
            : static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(in_flight_.size())));
    for (std::size_t i = 0; i < n; ++i) {
      deliver(in_flight_.back());
      in_flight_.pop_back();
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  // A poll cycle, perhaps meeting faults on its way.
  void poll() {
    const int fault = static_cast<int>(uniform(0, 6));
    if (fault == 0) fake_.fail_next(500, 3);       // more than the attempts: the cycle fails
    if (fault == 1) fake_.fail_next(429, 1, "2");  // waits Retry-After, then goes on
    if (fault == 2) fake_.truncate_next();         // a cut body, retried
    if (fault == 3) fake_.fail_next(503, 1);       // one backoff, then goes on
    fake_.set_now(now());
    const CycleOutcome out =
        poller_->run_cycle({kProject, "ID"}, chance(0.3) ? PollKind::kFull : PollKind::kActive);
    ++polls_;
    if (out.error) ++failed_polls_;
  }

  // --- the comparison -----------------------------------------------------------

  void expect_mirror_equals_model() {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    int compared = 0;
    for (const auto& [id, run] : runs_) {
      SCOPED_TRACE("run " + std::to_string(id) + " (seed " + std::to_string(seed_) + ")");
      SQLite::Statement q(db,
                          "SELECT state, name, passed_count, failed_count, untested_count "
                          "FROM runs WHERE run_id = ?");
      q.bind(1, id);
      const bool found = q.executeStep();
      if (run.life == Life::kDeleted) {
        // Never seen (every webhook dropped, deleted before a poll) or a tombstone.
        if (found) {
          EXPECT_EQ(q.getColumn(0).getString(), "deleted");
        }
        continue;
      }
      ASSERT_TRUE(found) << "a run TestRail lists is missing";
      ++compared;
      // A poll cannot tell aborted from completed: only the run.aborted
      // webhook can, when a copy of it arrived.
      const char* state = run.life == Life::kActive                           ? "active"
                          : run.life == Life::kAborted && run.abort_delivered ? "aborted"
                                                                              : "completed";
      EXPECT_EQ(q.getColumn(0).getString(), state);
      EXPECT_EQ(q.getColumn(1).getString(), run.name);
      EXPECT_EQ(q.getColumn(2).getInt64(), run.passed);
      EXPECT_EQ(q.getColumn(3).getInt64(), run.failed);
      EXPECT_EQ(q.getColumn(4).getInt64(), run.untested);
    }
    EXPECT_GT(compared, 0);
    // Webhook-only fields (cases_count, report_visible) are not compared:
    // a dropped webhook loses them by design, and no poll can tell.
  }

  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  TempDir dir_;
  FakeTestRail fake_{[] {
    FakeTestRail::Options o;
    o.max_page_size = 8;
    return o;
  }()};
  Metrics metrics_;
  HttpClient http_;
  FakeClock client_clock_;  // the client's waits pass at once
  FakeClock clock_{std::int64_t{1'700'000'000} * 1000};  // the local clock
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<TestRailClient> client_;
  std::unique_ptr<Poller> poller_;
  std::map<std::int64_t, ModelRun> runs_;
  std::vector<InFlight> in_flight_;
  int sent_ = 0;  // webhooks sent, before drops and duplicates
  int delivered_ = 0;
  int polls_ = 0;
  int failed_polls_ = 0;
};

TEST_F(MirrorModel, AfterTheFaultsStopOneFullSyncMakesTheMirrorEqualTheModel) {
  for (int step = 0; step < kSteps; ++step) {
    pass(uniform(0, 3));
    upstream_step();
    if (chance(0.5)) deliver_some(/*all=*/false);
    if (HasFatalFailure()) return;
    if (chance(0.15)) poll();
  }
  // The faults stop: what is still in flight arrives, then one clean full sync.
  pass(1);
  deliver_some(/*all=*/true);
  if (HasFatalFailure()) return;
  pass(1);
  fake_.set_now(now());
  ASSERT_EQ(fake_.pending_faults(), 0u);
  const CycleOutcome out = poller_->run_cycle({kProject, "ID"}, PollKind::kFull);
  ASSERT_FALSE(out.error) << *out.error;
  std::cout << "[ model ] " << runs_.size() << " runs, " << sent_ << " webhooks sent, "
            << delivered_ << " deliveries, " << polls_ << " polls (" << failed_polls_ << " failed)"
            << std::endl;
  expect_mirror_equals_model();
}

}  // namespace
}  // namespace runsync
