// The runs and their change log against real database files.
#include "storage/run_repository.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;  // TempDir and the storage fixtures

class RunRepositoryTest : public StoreTest {};

TEST_F(RunRepositoryTest, ARepollThatFindsNothingNewWritesNothing) {
  Observation poll = observation(7, Source::kPoll, 100, StateClaim::kActive);
  poll.set(Field::kName, Value{std::string("Nightly")});
  poll.set(Field::kPassedCount, Value{std::int64_t{4}});
  ASSERT_TRUE(store->begin().is_ok());
  auto first = store->runs().apply(poll, 1);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(first.is_ok());
  EXPECT_TRUE(first->created && first->changed);

  const int before = store->db().getTotalChanges();
  poll.observed_at = 200;
  ASSERT_TRUE(store->begin().is_ok());
  auto second = store->runs().apply(poll, 2);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(second.is_ok());
  EXPECT_FALSE(second->written);
  EXPECT_EQ(store->db().getTotalChanges(), before);
  EXPECT_EQ(count(store->db(), "SELECT count(*) FROM run_changes"), 1);
}

TEST_F(RunRepositoryTest, RoundTripsEveryField) {
  Observation o = observation(11, Source::kWebhook, 50, StateClaim::kAborted);
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
  ASSERT_TRUE(store->runs().apply(o, 60).is_ok());
  ASSERT_TRUE(store->commit().is_ok());
  auto loaded = store->runs().load(11);
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

TEST_F(RunRepositoryTest, ApplyAllDoesWhatApplyingEachInTurnDoes) {
  // Known runs (some deleted, some only from a webhook) and a batch larger
  // than one query's worth of ids, with the same run more than once: newer
  // after older, older after newer, and a deletion in the middle.
  std::vector<Observation> setup;
  for (std::int64_t id = 1; id <= 400; id += 2) setup.push_back(polled(id, 100, 1, id % 3 == 0));
  setup.push_back(deleted_by_poll(5, 100));
  Observation hooked = observation(7, Source::kWebhook, 300, StateClaim::kAborted);
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

  std::unique_ptr<Store>& one = store;
  auto all = open_store(dir.file("all.db"));
  for (Store* s : {one.get(), all.get()}) {
    ASSERT_TRUE(s->begin().is_ok());
    for (const auto& o : setup) ASSERT_TRUE(s->runs().apply(o, 10).is_ok());
    ASSERT_TRUE(s->commit().is_ok());
  }

  std::vector<ApplyResult> want;
  ASSERT_TRUE(one->begin().is_ok());
  for (const auto& o : batch) {
    auto r = one->runs().apply(o, 20);
    ASSERT_TRUE(r.is_ok()) << r.message();
    want.push_back(r.value());
  }
  ASSERT_TRUE(one->commit().is_ok());

  ASSERT_TRUE(all->begin().is_ok());
  auto got = all->runs().apply_all(batch, 20);
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

TEST_F(RunRepositoryTest, ApplyAllTwiceWritesNothingTheSecondTime) {
  std::vector<Observation> batch;
  for (std::int64_t id = 1; id <= 600; ++id) batch.push_back(polled(id, 100, 1, id % 2 == 0));
  ASSERT_TRUE(store->begin().is_ok());
  auto first = store->runs().apply_all(batch, 1);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(first.is_ok()) << first.message();
  for (const auto& r : *first) EXPECT_TRUE(r.created && r.changed && r.written);
  const std::vector<std::string> before = dump(store->db());
  const int changes = store->db().getTotalChanges();

  for (auto& o : batch) o.observed_at = 200;  // a later poll that finds nothing new
  ASSERT_TRUE(store->begin().is_ok());
  auto second = store->runs().apply_all(batch, 2);
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
TEST_F(RunRepositoryTest, KnownRunsOfAProjectWithAndWithoutWhetherAPollSawThem) {
  std::vector<Observation> batch = {polled(1, 100, 1), polled(2, 100, 1, /*completed=*/true),
                                    polled(3, 100, 1)};
  Observation other = polled(4, 100, 1);
  other.set(Field::kProjectId, Value{std::int64_t{2}});
  batch.push_back(other);
  batch.push_back(deleted_by_poll(3, 101));
  ASSERT_TRUE(store->begin().is_ok());
  ASSERT_TRUE(store->runs().apply_all(batch, 1).is_ok());
  // Run 9: only a webhook told us, by project code.
  ASSERT_TRUE(store->journal().apply(delivery(completed(9, 1000, 5))).is_ok());
  // Run 10: a webhook for the project, a poll then filled its project_id.
  ASSERT_TRUE(store->journal().apply(delivery(completed(10, 1000, 5))).is_ok());
  Observation filled = polled(10, 1001, 1, /*completed=*/true);
  ASSERT_TRUE(store->runs().apply_all({&filled, 1}, 2).is_ok());
  ASSERT_TRUE(store->commit().is_ok());

  using Row = std::tuple<std::int64_t, RunState, bool>;
  auto rows = [&](bool with_polled) {
    auto known = store->runs().known_runs(1, "ID", with_polled);
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

TEST_F(RunRepositoryTest, ApplyAllOfNothingIsFine) {
  ASSERT_TRUE(store->begin().is_ok());
  auto r = store->runs().apply_all({}, 1);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_TRUE(r->empty());
}

// The writer keeps the runs it wrote last in memory; what another
// connection commits, and what a rollback undoes, must not be served from
// there.
TEST_F(RunRepositoryTest, RecentRunsAreReadAgainAfterAnotherConnectionWritesOrARollback) {
  auto apply = [&](const std::string& body, std::int64_t at) {
    EXPECT_TRUE(store->begin().is_ok());
    auto r = store->journal().apply(delivery(body, at));
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
    auto other = open_database(dir.file("s.db"), OpenOptions{});
    ASSERT_TRUE(other.is_ok());
    other.value()->exec("UPDATE runs SET passed_count = 7 WHERE run_id = 1");
  }
  apply(completed(1, 101, 4), 1001);
  EXPECT_NE(last_change().find(R"("passed_count":[7,4])"), std::string::npos) << last_change();

  // A rolled-back write is forgotten too.
  ASSERT_TRUE(store->begin().is_ok());
  ASSERT_TRUE(store->journal().apply(delivery(completed(1, 102, 5), 1002)).is_ok());
  store->rollback();
  apply(completed(1, 103, 6), 1003);
  EXPECT_NE(last_change().find(R"("passed_count":[4,6])"), std::string::npos) << last_change();
  auto row = store->runs().load(1);
  ASSERT_TRUE(row.is_ok() && row.value());
  EXPECT_EQ(std::get<std::int64_t>(row.value()->get(Field::kPassedCount)), 6);

  // Polls do not fill the cache, but what they write over a cached run is
  // what the next webhook starts from.
  ASSERT_TRUE(store->begin().is_ok());
  const Observation polls[] = {polled(1, 104, 8, /*completed=*/true)};
  auto polled_page = store->runs().apply_all(polls, 1004);
  ASSERT_TRUE(polled_page.is_ok()) << polled_page.message();
  ASSERT_TRUE(store->commit().is_ok());
  apply(completed(1, 105, 9), 1005);
  EXPECT_NE(last_change().find(R"("passed_count":[8,9])"), std::string::npos) << last_change();
}

}  // namespace
}  // namespace runsync
