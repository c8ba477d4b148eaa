// Storage against real SQLite files in a temporary directory.
#include "storage/store.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <tuple>

#include "core/webhook_event.h"
#include "storage/database.h"
#include "storage/report.h"
#include "storage/writer.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;

std::unique_ptr<Store> open_store(const std::string& path) {
  auto store = Store::open(path, OpenOptions{});
  EXPECT_TRUE(store.is_ok()) << store.message();
  return std::move(store).value();
}

WebhookDelivery delivery(const std::string& body, std::int64_t received_at = 1000) {
  auto ev = parse_webhook_event(body);
  EXPECT_TRUE(ev.is_ok()) << ev.message();
  WebhookDelivery d;
  d.event = std::move(ev).value();
  d.delivery_key = "sha256:" + body;
  d.received_at = received_at;
  d.body = body;
  return d;
}

std::string completed(int run, long ts, int passed) {
  return R"({"event_name":"run.completed","timestamp":)" + std::to_string(ts) +
         R"(,"payload":{"id":)" + std::to_string(run) + R"(,"cases":10,"passed":)" +
         std::to_string(passed) + R"(},"project_code":"ID"})";
}

std::int64_t count(SQLite::Database& db, const std::string& sql) {
  return db.execAndGet(sql).getInt64();
}

TEST(Database, MigrationsCreateTheSpecSchema) {
  TempDir dir;
  auto db = open_database(dir.file("m.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok()) << db.message();
  SQLite::Database& d = *db.value();
  EXPECT_EQ(schema_version(d), latest_schema_version());
  EXPECT_EQ(d.execAndGet("PRAGMA journal_mode").getString(), "wal");
  EXPECT_EQ(d.execAndGet("PRAGMA synchronous").getInt(), 2);  // FULL
  const std::map<std::string, std::vector<std::string>> spec = {
      {"runs",
       {"run_id", "project_id", "project_code", "name", "description", "suite_id", "milestone_id",
        "assignedto_id", "plan_id", "plan_name", "config", "environment", "refs", "url",
        "created_on", "created_by", "completed_on", "state", "is_completed", "cases_count",
        "passed_count", "failed_count", "blocked_count", "untested_count", "retest_count",
        "skipped_count", "custom_status1_count", "custom_status2_count", "custom_status3_count",
        "custom_status4_count", "custom_status5_count", "custom_status6_count",
        "custom_status7_count", "duration_ms", "report_visible", "last_event_at",
        "last_polled_at", "updated_at", "change_seq"}},
      {"run_changes", {"seq", "run_id", "changed_at", "source", "changes"}},
      {"webhook_events",
       {"seq", "received_at", "delivery_key", "event_name", "project_code", "run_id", "event_ts",
        "body", "result"}},
      {"poll_cycles",
       {"id", "project_id", "kind", "started_at", "finished_at", "pages", "requests", "runs_seen",
        "runs_changed", "runs_deleted", "error"}},
  };
  for (const auto& [table, columns] : spec) {
    std::set<std::string> have;
    SQLite::Statement info(d, "SELECT name FROM pragma_table_info(?)");
    info.bind(1, table);
    while (info.executeStep()) have.insert(info.getColumn(0).getString());
    for (const auto& c : columns) EXPECT_TRUE(have.count(c)) << table << "." << c;
  }
}

TEST(Database, ReopeningAppliesNothingTwice) {
  TempDir dir;
  { ASSERT_TRUE(open_database(dir.file("m.db"), OpenOptions{}).is_ok()); }
  auto db = open_database(dir.file("m.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok());
  int applied = -1;
  ASSERT_TRUE(migrate(*db.value(), &applied).is_ok());
  EXPECT_EQ(applied, 0);
}

TEST(Database, RefusesADatabaseNewerThanTheBinary) {
  TempDir dir;
  {
    SQLite::Database raw(dir.file("new.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("PRAGMA user_version = 999");
  }
  auto db = open_database(dir.file("new.db"), OpenOptions{});
  ASSERT_FALSE(db.is_ok());
  EXPECT_NE(db.message().find("newer"), std::string::npos) << db.message();
  // And nothing was changed.
  SQLite::Database raw(dir.file("new.db"), SQLite::OPEN_READONLY);
  EXPECT_EQ(raw.execAndGet("PRAGMA user_version").getInt(), 999);
  EXPECT_FALSE(raw.tableExists("runs"));
}

TEST(Database, UnwritablePathIsAClearError) {
  auto db = open_database("/nonexistent-dir/x/runsync.db", OpenOptions{});
  ASSERT_FALSE(db.is_ok());
  EXPECT_NE(db.message().find("/nonexistent-dir/x/runsync.db"), std::string::npos);
}

TEST(Store, WebhookResultsAndJournal) {
  TempDir dir;
  auto store = open_store(dir.file("s.db"));
  ASSERT_TRUE(store->begin().is_ok());
  auto r1 = store->apply_webhook(delivery(completed(5, 200, 3)));
  auto r2 = store->apply_webhook(delivery(completed(5, 200, 3)));   // same delivery again
  auto r3 = store->apply_webhook(delivery(completed(5, 100, 1)));   // older
  auto r4 = store->apply_webhook(delivery(
      R"({"event_name":"plan.created","timestamp":1,"payload":{"id":9},"project_code":"ID"})"));
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(r1.is_ok() && r2.is_ok() && r3.is_ok() && r4.is_ok());
  EXPECT_EQ(r1.value(), WebhookResult::kApplied);
  EXPECT_EQ(r2.value(), WebhookResult::kDuplicate);
  EXPECT_EQ(r3.value(), WebhookResult::kStale);
  EXPECT_EQ(r4.value(), WebhookResult::kIgnored);

  SQLite::Database& db = store->db();
  EXPECT_EQ(count(db, "SELECT count(*) FROM webhook_events"), 3);
  EXPECT_EQ(count(db, "SELECT count(*) FROM webhook_events WHERE result = 'stale'"), 1);
  EXPECT_EQ(count(db, "SELECT count(*) FROM webhook_events WHERE result = 'ignored'"), 1);
  EXPECT_EQ(count(db, "SELECT passed_count FROM runs WHERE run_id = 5"), 3);
  EXPECT_EQ(db.execAndGet("SELECT state FROM runs WHERE run_id = 5").getString(), "completed");
  // change_seq is the seq of the run's newest change-log row.
  EXPECT_EQ(count(db, "SELECT change_seq FROM runs WHERE run_id = 5"),
            count(db, "SELECT max(seq) FROM run_changes WHERE run_id = 5"));
  EXPECT_EQ(db.execAndGet("SELECT source FROM run_changes").getString(), "webhook");
}

TEST(Store, ARepollThatFindsNothingNewWritesNothing) {
  TempDir dir;
  auto store = open_store(dir.file("s.db"));
  Observation poll;
  poll.run_id = 7;
  poll.source = Source::kPoll;
  poll.observed_at = 100;
  poll.state = StateClaim::kActive;
  poll.set(Field::kName, Value{std::string("Nightly")});
  poll.set(Field::kPassedCount, Value{std::int64_t{4}});
  ASSERT_TRUE(store->begin().is_ok());
  auto first = store->apply_observation(poll, 1);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(first.is_ok());
  EXPECT_TRUE(first->created && first->changed);

  const int before = store->db().getTotalChanges();
  poll.observed_at = 200;
  ASSERT_TRUE(store->begin().is_ok());
  auto second = store->apply_observation(poll, 2);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(second.is_ok());
  EXPECT_FALSE(second->written);
  EXPECT_EQ(store->db().getTotalChanges(), before);
  EXPECT_EQ(count(store->db(), "SELECT count(*) FROM run_changes"), 1);
}

TEST(Store, RoundTripsEveryField) {
  TempDir dir;
  auto store = open_store(dir.file("s.db"));
  Observation o;
  o.run_id = 11;
  o.source = Source::kWebhook;
  o.observed_at = 50;
  o.state = StateClaim::kAborted;
  std::int64_t n = 1;
  for (const auto& f : all_fields()) {
    if (f.field == Field::kState || f.field == Field::kIsCompleted) continue;
    if (f.kind == ValueKind::kText) {
      o.set(f.field, Value{std::string(f.column) + "-value"});
    } else if (f.kind == ValueKind::kBool) {
      o.set(f.field, Value{std::int64_t{1}});
    } else {
      o.set(f.field, Value{n++});
    }
  }
  ASSERT_TRUE(store->begin().is_ok());
  ASSERT_TRUE(store->apply_observation(o, 60).is_ok());
  ASSERT_TRUE(store->commit().is_ok());
  auto loaded = store->load_run(11);
  ASSERT_TRUE(loaded.is_ok() && loaded.value().has_value());
  const RunRecord& r = *loaded.value();
  for (const auto& f : all_fields()) {
    if (f.field == Field::kState) {
      EXPECT_EQ(r.get(f.field), Value{std::string("aborted")});
    } else if (f.field == Field::kIsCompleted) {
      EXPECT_EQ(r.get(f.field), Value{std::int64_t{1}});
    } else {
      EXPECT_EQ(r.get(f.field), o.get(f.field).value()) << f.column;
    }
  }
  EXPECT_EQ(r.last_event_at, 50);
  EXPECT_EQ(r.updated_at, 60);
  EXPECT_EQ(r.observed_at(FieldGroup::kCounts), 50);
}

// A poll observation of run `id`, its fields derived from `version`.
Observation polled(std::int64_t id, std::int64_t at, int version, bool completed = false) {
  Observation o;
  o.run_id = id;
  o.source = Source::kPoll;
  o.observed_at = at;
  o.state = completed ? StateClaim::kEnded : StateClaim::kActive;
  o.set(Field::kProjectId, Value{std::int64_t{1}});
  o.set(Field::kName, Value{"Run " + std::to_string(id) + " v" + std::to_string(version)});
  o.set(Field::kDescription, version % 2 ? Value{} : Value{std::string(40, 'd')});
  o.set(Field::kPassedCount, Value{std::int64_t{version}});
  o.set(Field::kPlanId, Value{});
  o.set(Field::kPlanName, Value{});
  return o;
}

// A poll's finding that run `id` no longer exists (get_run said so).
Observation deleted_by_poll(std::int64_t id, std::int64_t at) {
  Observation o;
  o.run_id = id;
  o.source = Source::kPoll;
  o.observed_at = at;
  o.state = StateClaim::kDeleted;
  return o;
}

// Every row of `runs` and `run_changes`, as text, in key order.
std::vector<std::string> dump(SQLite::Database& db) {
  std::vector<std::string> out;
  for (const char* sql :
       {"SELECT * FROM runs ORDER BY run_id", "SELECT * FROM run_changes ORDER BY seq"}) {
    SQLite::Statement st(db, sql);
    while (st.executeStep()) {
      std::string row;
      for (int i = 0; i < st.getColumnCount(); ++i) {
        row += st.getColumn(i).isNull() ? "NULL" : st.getColumn(i).getString();
        row += '|';
      }
      out.push_back(std::move(row));
    }
  }
  return out;
}

TEST(Store, ApplyObservationsDoesWhatApplyingEachInTurnDoes) {
  // Known runs (some deleted, some only from a webhook) and a batch larger
  // than one query's worth of ids, with the same run more than once: newer
  // after older, older after newer, and a deletion in the middle.
  std::vector<Observation> setup;
  for (std::int64_t id = 1; id <= 400; id += 2) setup.push_back(polled(id, 100, 1, id % 3 == 0));
  setup.push_back(deleted_by_poll(5, 100));
  Observation hooked;
  hooked.run_id = 7;
  hooked.source = Source::kWebhook;
  hooked.observed_at = 300;
  hooked.state = StateClaim::kAborted;
  hooked.set(Field::kSkippedCount, Value{std::int64_t{2}});
  setup.push_back(hooked);

  std::vector<Observation> batch;
  for (std::int64_t id = 1; id <= 700; ++id) batch.push_back(polled(id, 200, id % 4 == 0 ? 1 : 2));
  batch.push_back(polled(9, 250, 3, true));
  batch.push_back(polled(9, 150, 4));
  batch.push_back(polled(650, 260, 5));
  batch.push_back(deleted_by_poll(11, 270));
  batch.push_back(polled(11, 280, 6));
  // New runs from two sources in one batch: each change row keeps its own.
  Observation from_api = polled(801, 290, 7);
  from_api.source = Source::kApi;
  batch.push_back(from_api);
  batch.push_back(polled(802, 290, 7));
  batch.push_back(polled(1, 200, 2));  // the same again: nothing new

  TempDir dir;
  auto one = open_store(dir.file("one.db"));
  auto all = open_store(dir.file("all.db"));
  for (Store* s : {one.get(), all.get()}) {
    ASSERT_TRUE(s->begin().is_ok());
    for (const auto& o : setup) ASSERT_TRUE(s->apply_observation(o, 10).is_ok());
    ASSERT_TRUE(s->commit().is_ok());
  }

  std::vector<ApplyResult> want;
  ASSERT_TRUE(one->begin().is_ok());
  for (const auto& o : batch) {
    auto r = one->apply_observation(o, 20);
    ASSERT_TRUE(r.is_ok()) << r.message();
    want.push_back(r.value());
  }
  ASSERT_TRUE(one->commit().is_ok());

  ASSERT_TRUE(all->begin().is_ok());
  auto got = all->apply_observations(batch, 20);
  ASSERT_TRUE(all->commit().is_ok());
  ASSERT_TRUE(got.is_ok()) << got.message();
  ASSERT_EQ(got->size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*got)[i].outcome, want[i].outcome) << i;
    EXPECT_EQ((*got)[i].created, want[i].created) << i;
    EXPECT_EQ((*got)[i].changed, want[i].changed) << i;
    EXPECT_EQ((*got)[i].written, want[i].written) << i;
  }
  EXPECT_TRUE((*got)[0].written);     // run 1 was known at version 1
  EXPECT_FALSE(got->back().written);  // run 1 again
  EXPECT_EQ(dump(all->db()), dump(one->db()));
  EXPECT_EQ(all->db().execAndGet("SELECT state FROM runs WHERE run_id = 11").getString(),
            "deleted");
  EXPECT_EQ(all->db().execAndGet("SELECT state FROM runs WHERE run_id = 7").getString(), "aborted");
}

TEST(Store, ApplyObservationsTwiceWritesNothingTheSecondTime) {
  TempDir dir;
  auto store = open_store(dir.file("s.db"));
  std::vector<Observation> batch;
  for (std::int64_t id = 1; id <= 600; ++id) batch.push_back(polled(id, 100, 1, id % 2 == 0));
  ASSERT_TRUE(store->begin().is_ok());
  auto first = store->apply_observations(batch, 1);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(first.is_ok()) << first.message();
  for (const auto& r : *first) EXPECT_TRUE(r.created && r.changed && r.written);
  const std::vector<std::string> before = dump(store->db());
  const int changes = store->db().getTotalChanges();

  for (auto& o : batch) o.observed_at = 200;  // a later poll that finds nothing new
  ASSERT_TRUE(store->begin().is_ok());
  auto second = store->apply_observations(batch, 2);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(second.is_ok()) << second.message();
  for (const auto& r : *second) EXPECT_FALSE(r.written || r.changed || r.created);
  EXPECT_EQ(store->db().getTotalChanges(), changes);
  EXPECT_EQ(dump(store->db()), before);
  EXPECT_EQ(count(store->db(), "SELECT count(*) FROM run_changes"), 600);
}

// The runs a poll cycle starts from: the project's own (by project_id) and
// those only a webhook named (project_code, no project_id), deleted ones
// included; another project's never. `polled` only when asked for.
TEST(Store, KnownRunsOfAProjectWithAndWithoutWhetherAPollSawThem) {
  TempDir dir;
  auto store = open_store(dir.file("s.db"));
  std::vector<Observation> batch = {polled(1, 100, 1), polled(2, 100, 1, /*completed=*/true),
                                    polled(3, 100, 1)};
  Observation other = polled(4, 100, 1);
  other.set(Field::kProjectId, Value{std::int64_t{2}});
  batch.push_back(other);
  batch.push_back(deleted_by_poll(3, 101));
  ASSERT_TRUE(store->begin().is_ok());
  ASSERT_TRUE(store->apply_observations(batch, 1).is_ok());
  // Run 9: only a webhook told us, by project code.
  ASSERT_TRUE(store->apply_webhook(delivery(completed(9, 1000, 5))).is_ok());
  // Run 10: a webhook for the project, a poll then filled its project_id.
  ASSERT_TRUE(store->apply_webhook(delivery(completed(10, 1000, 5))).is_ok());
  Observation filled = polled(10, 1001, 1, /*completed=*/true);
  ASSERT_TRUE(store->apply_observations({&filled, 1}, 2).is_ok());
  ASSERT_TRUE(store->commit().is_ok());

  using Row = std::tuple<std::int64_t, RunState, bool>;
  auto rows = [&](bool with_polled) {
    auto known = store->known_runs(1, "ID", with_polled);
    EXPECT_TRUE(known.is_ok()) << known.message();
    std::vector<Row> out;
    for (const KnownRun& k : *known) out.emplace_back(k.run_id, k.state, k.polled);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(rows(true), (std::vector<Row>{{1, RunState::kActive, true},
                                          {2, RunState::kCompleted, true},
                                          {3, RunState::kDeleted, true},
                                          {9, RunState::kCompleted, false},
                                          {10, RunState::kCompleted, true}}));
  // Without: the same runs and states; a run only a webhook named still
  // says so, the others are not read.
  EXPECT_EQ(rows(false), (std::vector<Row>{{1, RunState::kActive, false},
                                           {2, RunState::kCompleted, false},
                                           {3, RunState::kDeleted, false},
                                           {9, RunState::kCompleted, false},
                                           {10, RunState::kCompleted, false}}));
}

TEST(Store, ApplyObservationsOfNothingIsFine) {
  TempDir dir;
  auto store = open_store(dir.file("s.db"));
  ASSERT_TRUE(store->begin().is_ok());
  auto r = store->apply_observations({}, 1);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_TRUE(r->empty());
}

// The writer keeps the runs it wrote last in memory; what another
// connection commits, and what a rollback undoes, must not be served from
// there.
TEST(Store, RecentRunsAreReadAgainAfterAnotherConnectionWritesOrARollback) {
  TempDir dir;
  auto store = open_store(dir.file("c.db"));
  auto apply = [&](const std::string& body, std::int64_t at) {
    EXPECT_TRUE(store->begin().is_ok());
    auto r = store->apply_webhook(delivery(body, at));
    EXPECT_TRUE(r.is_ok()) << r.message();
    EXPECT_TRUE(store->commit().is_ok());
  };
  auto last_change = [&] {
    return store->db()
        .execAndGet("SELECT changes FROM run_changes ORDER BY seq DESC LIMIT 1")
        .getString();
  };
  apply(completed(1, 100, 3), 1000);  // run 1: passed_count 3, cached

  // Another connection changes the row behind the writer's back.
  {
    auto other = open_database(dir.file("c.db"), OpenOptions{});
    ASSERT_TRUE(other.is_ok());
    other.value()->exec("UPDATE runs SET passed_count = 7 WHERE run_id = 1");
  }
  apply(completed(1, 101, 4), 1001);
  EXPECT_NE(last_change().find(R"("passed_count":[7,4])"), std::string::npos) << last_change();

  // A rolled-back write is forgotten too.
  ASSERT_TRUE(store->begin().is_ok());
  ASSERT_TRUE(store->apply_webhook(delivery(completed(1, 102, 5), 1002)).is_ok());
  store->rollback();
  apply(completed(1, 103, 6), 1003);
  EXPECT_NE(last_change().find(R"("passed_count":[4,6])"), std::string::npos) << last_change();
  auto row = store->load_run(1);
  ASSERT_TRUE(row.is_ok() && row.value());
  EXPECT_EQ(std::get<std::int64_t>(row.value()->get(Field::kPassedCount)), 6);

  // Polls do not fill the cache, but what they write over a cached run is
  // what the next webhook starts from.
  ASSERT_TRUE(store->begin().is_ok());
  const Observation polls[] = {polled(1, 104, 8, /*completed=*/true)};
  auto polled_page = store->apply_observations(polls, 1004);
  ASSERT_TRUE(polled_page.is_ok()) << polled_page.message();
  ASSERT_TRUE(store->commit().is_ok());
  apply(completed(1, 105, 9), 1005);
  EXPECT_NE(last_change().find(R"("passed_count":[8,9])"), std::string::npos) << last_change();
}

TEST(Writer, CommitsBatchesAndIsolatesAFailingJob) {
  TempDir dir;
  Writer writer(open_store(dir.file("w.db")), Writer::Options{});
  std::vector<std::future<Status>> results;
  for (int i = 1; i <= 200; ++i) {
    auto p = std::make_shared<std::promise<Status>>();
    results.push_back(p->get_future());
    const bool bad = i == 100;
    ASSERT_TRUE(writer.submit(
        [i, bad](Store& s) -> Status {
          auto r = s.apply_webhook(delivery(completed(i, 100, i)));
          if (!r.is_ok()) return r.status();
          return bad ? Status::error("job failed on purpose") : Status::ok();
        },
        [p](const Status& s) { p->set_value(s); }));
  }
  for (int i = 0; i < 200; ++i) {
    Status s = results[i].get();
    EXPECT_EQ(s.is_ok(), i != 99) << i << " " << s.message();
  }
  writer.stop();
  auto db = open_database(dir.file("w.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok());
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM webhook_events"), 199);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM runs WHERE run_id = 100"), 0);
}

// A batch runs without savepoints; when a job fails, the batch is rolled
// back and run again with a savepoint per job: the others' writes land
// once, the failing job's not at all.
TEST(Writer, RerunsABatchWithAFailingJobAndKeepsTheOthers) {
  TempDir dir;
  Writer writer(open_store(dir.file("w.db")), Writer::Options{});
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> blocked{false};
  ASSERT_TRUE(writer.submit([&, gate](Store&) { blocked = true; gate.wait(); return Status::ok(); },
                            [](const Status&) {}));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return blocked.load(); }));
  // Queued while the writer is busy: the next batch holds all three.
  std::atomic<int> runs_of_first{0};
  std::vector<std::future<Status>> results;
  for (int i = 1; i <= 3; ++i) {
    auto p = std::make_shared<std::promise<Status>>();
    results.push_back(p->get_future());
    ASSERT_TRUE(writer.submit(
        [i, &runs_of_first](Store& s) -> Status {
          if (i == 1) ++runs_of_first;
          auto r = s.apply_webhook(delivery(completed(i, 100, i)));
          if (!r.is_ok()) return r.status();
          if (r.value() != WebhookResult::kApplied) return Status::error("not applied");
          return i == 2 ? Status::error("job failed on purpose") : Status::ok();
        },
        [p](const Status& s) { p->set_value(s); }));
  }
  release.set_value();
  EXPECT_TRUE(results[0].get().is_ok());
  EXPECT_EQ(results[1].get().message(), "job failed on purpose");
  EXPECT_TRUE(results[2].get().is_ok());
  writer.stop();
  EXPECT_EQ(runs_of_first.load(), 2);  // the batch ran again
  auto db = open_database(dir.file("w.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok());
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM webhook_events"), 2);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM runs WHERE run_id IN (1, 3)"), 2);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM runs WHERE run_id = 2"), 0);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM run_changes"), 2);
}

// A WalSync that blocks until opened, and can fail. durable(): what
// `committed` counted when the last finished sync began.
class GatedWalSync : public WalSync {
 public:
  explicit GatedWalSync(std::function<std::int64_t()> committed = [] { return 0; })
      : committed_(std::move(committed)) {}
  Status sync() override {
    const std::int64_t covered = committed_();
    std::unique_lock lock(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    if (fail_) return Status::error("syncing the WAL: disk on fire");
    durable_ = std::max(durable_, covered);
    return Status::ok();
  }
  std::int64_t durable() {
    std::lock_guard lock(mu_);
    return durable_;
  }
  void open(bool fail = false) {
    std::lock_guard lock(mu_);
    open_ = true;
    fail_ = fail;
    cv_.notify_all();
  }
  int started() {
    std::lock_guard lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  bool fail_ = false;
  int started_ = 0;
  std::function<std::int64_t()> committed_;
  std::int64_t durable_ = 0;
};

// A writer whose Store leaves each commit's sync to `sync`.
std::unique_ptr<Writer> split_writer(const std::string& path, std::shared_ptr<WalSync> sync) {
  OpenOptions options;
  options.auto_checkpoint = false;
  auto store = Store::open(path, options);
  EXPECT_TRUE(store.is_ok()) << store.message();
  auto own = store.value()->split_commit_sync();  // the Store's; `sync` stands in for it
  EXPECT_TRUE(own.is_ok()) << own.message();
  Writer::Options writer_options;
  writer_options.wal_sync = std::move(sync);
  return std::make_unique<Writer>(std::move(store).value(), writer_options);
}

std::int64_t journaled(const std::string& path) {
  OpenOptions read_only;
  read_only.read_only = true;
  auto db = open_database(path, read_only);
  EXPECT_TRUE(db.is_ok()) << db.message();
  return count(*db.value(), "SELECT count(*) FROM webhook_events");
}

TEST(Store, SplitsCommitAndSyncOnlyWhenFullAndCheckpointedElsewhere) {
  TempDir dir;
  EXPECT_FALSE(open_store(dir.file("a.db"))->split_commit_sync().is_ok());  // auto checkpoint
  OpenOptions normal;
  normal.durability = Durability::kNormal;
  normal.auto_checkpoint = false;
  auto store = Store::open(dir.file("b.db"), normal);
  ASSERT_TRUE(store.is_ok());
  EXPECT_FALSE(store.value()->split_commit_sync().is_ok());
  OpenOptions full;
  full.auto_checkpoint = false;
  store = Store::open(dir.file("c.db"), full);
  ASSERT_TRUE(store.is_ok());
  auto sync = store.value()->split_commit_sync();
  ASSERT_TRUE(sync.is_ok()) << sync.message();
  EXPECT_TRUE(sync.value()->sync().is_ok());
}

// A lone job: committed (another connection reads it) but answered only
// once the sync returned.
TEST(Writer, WithASplitSyncAnswersOnlyAfterTheSync) {
  TempDir dir;
  auto gate = std::make_shared<GatedWalSync>();
  auto writer = split_writer(dir.file("w.db"), gate);
  std::promise<Status> answered;
  auto answer = answered.get_future();
  ASSERT_TRUE(writer->submit(
      [](Store& s) { return s.apply_webhook(delivery(completed(1, 100, 1))).status(); },
      [&](const Status& s) { answered.set_value(s); }));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return gate->started() == 1; }));
  EXPECT_EQ(journaled(dir.file("w.db")), 1);
  EXPECT_EQ(answer.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  gate->open();
  EXPECT_TRUE(answer.get().is_ok());
  writer->stop();
}

// Batches committed while the disk is busy wait for a sync that began
// after their commit, on the sync thread, while the writer goes on.
TEST(Writer, WithASplitSyncCommitsTheNextBatchWhileTheLastSyncs) {
  TempDir dir;
  const std::string path = dir.file("w.db");
  auto gate = std::make_shared<GatedWalSync>([path] { return journaled(path); });
  auto writer = split_writer(path, gate);
  std::promise<void> release;
  std::shared_future<void> held = release.get_future().share();
  std::atomic<bool> blocked{false};
  // Per answer: its status, and how many rows were durable when it came.
  std::vector<std::future<std::pair<Status, std::int64_t>>> answers;
  auto submit = [&](int run, bool hold) {
    auto p = std::make_shared<std::promise<std::pair<Status, std::int64_t>>>();
    answers.push_back(p->get_future());
    return writer->submit(
        [run, hold, held, &blocked](Store& s) {
          if (hold) {
            blocked = true;
            held.wait();
          }
          return s.apply_webhook(delivery(completed(run, 100, run))).status();
        },
        [p, gate](const Status& s) { p->set_value({s, gate->durable()}); });
  };
  ASSERT_TRUE(submit(1, true));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return blocked.load(); }));
  for (int run = 2; run <= 11; ++run) ASSERT_TRUE(submit(run, false));
  release.set_value();
  // Both batches commit while the first sync is held.
  ASSERT_TRUE(runsync::testing::wait_until(
      [&] { return gate->started() == 1 && journaled(path) == 11; }));
  for (auto& a : answers) EXPECT_EQ(a.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  gate->open();
  // Run 1 was the first batch, runs 2-11 the second: each answer came after
  // a sync that began once its batch was committed.
  for (std::size_t i = 0; i < answers.size(); ++i) {
    auto [status, durable] = answers[i].get();
    EXPECT_TRUE(status.is_ok()) << status.message();
    EXPECT_GE(durable, i == 0 ? 1 : 11) << "answer " << i;
  }
  writer->stop();
}

// After a failed sync nothing is acknowledged any more, not even work
// that a later sync would cover.
TEST(Writer, WithASplitSyncAFailedSyncFailsEverythingAfterIt) {
  TempDir dir;
  auto gate = std::make_shared<GatedWalSync>();
  gate->open(/*fail=*/true);
  auto writer = split_writer(dir.file("w.db"), gate);
  for (int run = 1; run <= 2; ++run) {
    std::promise<Status> answered;
    auto answer = answered.get_future();
    ASSERT_TRUE(writer->submit(
        [run](Store& s) { return s.apply_webhook(delivery(completed(run, 100, run))).status(); },
        [&](const Status& s) { answered.set_value(s); }));
    EXPECT_EQ(answer.get().message(), "syncing the WAL: disk on fire") << run;
  }
  writer->stop();
  EXPECT_EQ(gate->started(), 1);
  EXPECT_EQ(journaled(dir.file("w.db")), 1);  // the second job never ran
}

TEST(Writer, RefusesWhenTheQueueIsFullAndDrainsOnStop) {
  TempDir dir;
  Writer::Options options;
  options.queue_capacity = 2;
  options.max_batch = 1;
  Writer writer(open_store(dir.file("w.db")), options);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> blocked{false};
  std::atomic<int> done{0};
  auto count_done = [&](const Status&) { ++done; };
  ASSERT_TRUE(writer.try_submit([&, gate](Store&) { blocked = true; gate.wait(); return Status::ok(); },
                                count_done));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return blocked.load(); }));
  EXPECT_TRUE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
  EXPECT_TRUE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
  EXPECT_FALSE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
  EXPECT_EQ(writer.depth(), 2u);
  release.set_value();
  writer.stop();
  EXPECT_EQ(done.load(), 3);
  EXPECT_FALSE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
}

TEST(Writer, AReaderHoldingAReadTransactionDoesNotStopWrites) {
  TempDir dir;
  Writer writer(open_store(dir.file("r.db")), Writer::Options{});
  ASSERT_TRUE(writer.run([](Store& s) { return s.apply_webhook(delivery(completed(1, 1, 1))).status(); }).is_ok());
  SQLite::Database reader(dir.file("r.db"), SQLite::OPEN_READONLY);
  reader.exec("BEGIN");
  EXPECT_EQ(count(reader, "SELECT count(*) FROM webhook_events"), 1);  // read snapshot held
  for (int i = 2; i <= 50; ++i) {
    ASSERT_TRUE(writer.run([i](Store& s) { return s.apply_webhook(delivery(completed(i, 1, 1))).status(); }).is_ok());
  }
  EXPECT_EQ(count(reader, "SELECT count(*) FROM webhook_events"), 1);  // still its snapshot
  reader.exec("COMMIT");
  EXPECT_EQ(count(reader, "SELECT count(*) FROM webhook_events"), 50);
}

TEST(Report, SummarisesTheMirror) {
  TempDir dir;
  {
    auto store = open_store(dir.file("rep.db"));
    ASSERT_TRUE(store->begin().is_ok());
    ASSERT_TRUE(store->apply_webhook(delivery(completed(1, 10, 1), 5000)).is_ok());
    ASSERT_TRUE(store->apply_webhook(delivery(completed(1, 5, 1), 5001)).is_ok());
    ASSERT_TRUE(store->commit().is_ok());
  }
  auto report = read_mirror_report(dir.file("rep.db"), 5100);
  ASSERT_TRUE(report.is_ok()) << report.message();
  EXPECT_EQ(report->runs_by_state.at("completed"), 1);
  EXPECT_EQ(report->last_webhook_at, 5001);
  EXPECT_EQ(report->webhook_results_last_hour.at("applied"), 1);
  EXPECT_EQ(report->webhook_results_last_hour.at("stale"), 1);
}

}  // namespace
}  // namespace runsync
