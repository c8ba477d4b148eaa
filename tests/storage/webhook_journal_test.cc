// The webhook journal against a real database file.
#include "storage/webhook_journal.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;  // TempDir and the storage fixtures

class WebhookJournalTest : public StoreTest {};

TEST_F(WebhookJournalTest, WebhookResultsAndJournal) {
  ASSERT_TRUE(store->begin().is_ok());
  auto r1 = store->journal().apply(delivery(completed(5, 200, 3)));
  auto r2 = store->journal().apply(delivery(completed(5, 200, 3)));   // same delivery again
  auto r3 = store->journal().apply(delivery(completed(5, 100, 1)));   // older
  auto r4 = store->journal().apply(delivery(
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

// A duplicate is a delivery whose key and event timestamp were journaled
// before, as a redelivery's are; a key reused for an event with another
// timestamp is a delivery of its own.
TEST_F(WebhookJournalTest, DuplicatesAreFoundByKeyAndTimestamp) {
  const WebhookDelivery first = delivery(completed(7, 300, 2));
  WebhookDelivery again = first;
  again.received_at = 5000;  // redelivered much later
  WebhookDelivery reused = delivery(completed(7, 400, 4));
  reused.delivery_key = first.delivery_key;
  ASSERT_TRUE(store->begin().is_ok());
  auto r1 = store->journal().apply(first);
  auto r2 = store->journal().apply(again);
  auto r3 = store->journal().apply(reused);
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_TRUE(r1.is_ok() && r2.is_ok() && r3.is_ok());
  EXPECT_EQ(r1.value(), WebhookResult::kApplied);
  EXPECT_EQ(r2.value(), WebhookResult::kDuplicate);
  EXPECT_EQ(r3.value(), WebhookResult::kApplied);
  SQLite::Database& db = store->db();
  EXPECT_EQ(count(db, "SELECT count(*) FROM webhook_events"), 2);
  EXPECT_EQ(count(db, "SELECT passed_count FROM runs WHERE run_id = 7"), 4);
}

}  // namespace
}  // namespace runsync
