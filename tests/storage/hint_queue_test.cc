// The pending refreshes TestRail hints ask for, on a real database file.
#include "storage/hint_queue.h"

#include <gtest/gtest.h>

#include "support/storage_fixtures.h"

namespace runsync {
namespace {

using namespace runsync::testing;

class HintQueueTest : public StoreTest {
 protected:
  void add(HintKind kind, std::int64_t id, std::int64_t at_ms) {
    ASSERT_TRUE(store->begin().is_ok());
    ASSERT_TRUE(store->hints().add(kind, id, at_ms).is_ok());
    ASSERT_TRUE(store->commit().is_ok());
  }
  std::vector<PendingRefresh> pending() {
    auto rows = store->hints().oldest(100);
    EXPECT_TRUE(rows.is_ok()) << rows.message();
    return rows.is_ok() ? rows.value() : std::vector<PendingRefresh>{};
  }
};

TEST_F(HintQueueTest, CoalescesHintsToOneRowPerKindAndId) {
  for (int i = 0; i < 50; ++i) add(HintKind::kRun, 7, 1000 + i);
  add(HintKind::kPlan, 7, 1100);  // another kind, another row
  add(HintKind::kRun, 8, 990);
  const auto rows = pending();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].kind, HintKind::kRun);  // oldest first
  EXPECT_EQ(rows[0].id, 8);
  EXPECT_EQ(rows[1].id, 7);
  EXPECT_EQ(rows[1].kind, HintKind::kRun);
  EXPECT_EQ(rows[1].hints, 50);
  EXPECT_EQ(rows[1].first_hint_at_ms, 1000);
  EXPECT_EQ(rows[1].last_hint_at_ms, 1049);
  EXPECT_EQ(rows[2].kind, HintKind::kPlan);
  EXPECT_EQ(store->hints().count().value(), 3);
}

TEST_F(HintQueueTest, ARefreshServesOnlyTheHintsThatCameBeforeItsRowWasRead) {
  add(HintKind::kRun, 7, 1000);
  add(HintKind::kRun, 7, 1500);
  const PendingRefresh taken = pending().at(0);
  // A hint while the refresh is in flight, stamped earlier than the refresh
  // began (a clock stepped back): it may describe a change the refresh
  // missed, so the row stays and owes a refresh from then on.
  add(HintKind::kRun, 7, 1100);
  auto first = store->hints().served(taken, 1200);
  ASSERT_TRUE(first.is_ok()) << first.message();
  EXPECT_FALSE(first.value());
  auto rows = pending();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].first_hint_at_ms, 1200);
  EXPECT_EQ(rows[0].hints, 3);
  auto second = store->hints().served(rows[0], 1300);
  ASSERT_TRUE(second.is_ok()) << second.message();
  EXPECT_TRUE(second.value());
  EXPECT_TRUE(pending().empty());
}

TEST_F(HintQueueTest, HintsSurviveReopeningTheDatabase) {
  add(HintKind::kProject, 1, 1000);
  add(HintKind::kRun, 5, 1001);
  store.reset();
  store = open_store(dir.file("s.db"));
  EXPECT_EQ(pending().size(), 2u);
  ASSERT_TRUE(store->hints().drop(HintKind::kProject, 1).is_ok());
  ASSERT_EQ(pending().size(), 1u);
  EXPECT_EQ(pending()[0].id, 5);
}

TEST_F(HintQueueTest, AVanishedPlanQueuesItsRunsTheMirrorStillHolds) {
  for (std::int64_t id : {1, 2, 3}) {
    Observation o = polled(id, 100, 1);
    o.set(Field::kPlanId, Value{std::int64_t{id == 3 ? 9 : 4}});
    ASSERT_TRUE(store->runs().apply(o, 100).is_ok());
  }
  ASSERT_TRUE(store->runs().apply(deleted_by_poll(2, 200), 200).is_ok());
  add(HintKind::kRun, 1, 500);  // already pending: coalesced
  auto none = store->hints().add_runs_of_plan(4, 900, {1});  // the plan still lists run 1
  ASSERT_TRUE(none.is_ok()) << none.message();
  EXPECT_EQ(none.value(), 0);
  auto queued = store->hints().add_runs_of_plan(4, 1000);
  ASSERT_TRUE(queued.is_ok()) << queued.message();
  EXPECT_EQ(queued.value(), 1);  // run 1 only: 2 is deleted, 3 is in plan 9
  const auto rows = pending();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, 1);
  EXPECT_EQ(rows[0].hints, 2);
  EXPECT_EQ(rows[0].first_hint_at_ms, 500);
}

}  // namespace
}  // namespace runsync
