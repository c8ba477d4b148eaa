// The reconciliation rules (SPEC §6) through the Store, on real SQLite
// files: every valid event is stored whatever the mirror knows of its run,
// and a webhook is never observed later than it arrived.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "core/webhook_event.h"
#include "storage/database.h"
#include "storage/store.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;

constexpr std::int64_t kRun = 777;

std::string event(const std::string& name, std::int64_t ts, const std::string& payload = "") {
  return testing::webhook_body(name, kRun, ts, payload);
}

// The six run events, each with what it carries.
struct Event {
  const char* name;
  std::string payload;
};
const std::vector<Event>& events() {
  static const std::vector<Event> all = {
      {"run.started", R"(,"title":"Nightly","cases_count":4)"},
      {"run.updated", R"(,"cases_added":2)"},
      {"run.completed", R"(,"cases":4,"passed":3)"},
      {"run.aborted", R"(,"cases":4,"passed":1)"},
      {"run.deleted", ""},
      {"run.report_changed", R"(,"visible":true)"},
  };
  return all;
}

class MirrorRules : public ::testing::Test {
 protected:
  void SetUp() override { reset(); }

  // A fresh, empty mirror in a new file.
  void reset() {
    store_.reset();
    path_ = dir_.file("m" + std::to_string(++files_) + ".db");
    auto store = Store::open(path_, OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    store_ = std::move(store).value();
  }

  // Applies one delivery in its own transaction, as the writer does.
  StatusOr<WebhookResult> deliver(const std::string& body, std::int64_t received_at) {
    auto ev = parse_webhook_event(body);
    if (!ev) return ev.status();
    WebhookDelivery d;
    d.event = std::move(ev).value();
    d.delivery_key = "sha256:" + body;
    d.received_at = received_at;
    d.body = body;
    if (Status s = store_->begin(); !s.is_ok()) return s;
    auto result = store_->journal().apply(d);
    if (!result) {
      store_->rollback();
      return result;
    }
    if (Status s = store_->commit(); !s.is_ok()) return s;
    return result;
  }

  std::string column(const std::string& name) {
    SQLite::Database db(path_, SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT " + name + " FROM runs WHERE run_id = ?");
    q.bind(1, kRun);
    if (!q.executeStep()) return "<no row>";
    return q.getColumn(0).isNull() ? "<null>" : q.getColumn(0).getString();
  }
  std::int64_t journaled() {
    SQLite::Database db(path_, SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT count(*) FROM webhook_events").getInt64();
  }

  TempDir dir_;
  int files_ = 0;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// Each of the six events against each state the mirror may hold the run
// in: stored and answered (no error), with the state rule 3 gives.
TEST_F(MirrorRules, EveryEventIsStoredWhateverTheMirrorKnows) {
  struct Prior {
    const char* state;               // "none": the mirror does not know the run
    std::vector<const char*> after;  // state after each of events(), in order
  };
  const std::vector<Prior> priors = {
      {"none", {"active", "active", "completed", "aborted", "deleted", "active"}},
      {"active", {"active", "active", "completed", "aborted", "deleted", "active"}},
      {"completed", {"completed", "completed", "completed", "aborted", "deleted", "completed"}},
      {"aborted", {"aborted", "aborted", "completed", "aborted", "deleted", "aborted"}},
      {"deleted", {"deleted", "deleted", "deleted", "deleted", "deleted", "deleted"}},
  };
  for (const Prior& prior : priors) {
    for (std::size_t e = 0; e < events().size(); ++e) {
      const Event& ev = events()[e];
      SCOPED_TRACE(std::string(prior.state) + " + " + ev.name);
      reset();
      const std::string state = prior.state;
      if (state != "none") {
        ASSERT_TRUE(
            deliver(event("run.started", 100, R"(,"title":"Before","cases_count":4)"), 100));
        if (state != "active") {
          const std::string name = state == "deleted" ? "run.deleted" : "run." + state;
          ASSERT_TRUE(deliver(event(name, 110, R"(,"cases":4)"), 110));
        }
        ASSERT_EQ(column("state"), state);
      }
      const std::int64_t before = journaled();
      auto result = deliver(event(ev.name, 200, ev.payload), 200);
      ASSERT_TRUE(result.is_ok()) << result.message();
      EXPECT_EQ(*result, state == "deleted" ? WebhookResult::kStale : WebhookResult::kApplied);
      EXPECT_EQ(journaled(), before + 1);
      EXPECT_EQ(column("state"), prior.after[e]);
      EXPECT_NE(column("is_completed"), "<null>");
      // A tombstone stays one, whatever comes after it (rule 3).
      if (std::string(prior.after[e]) == "deleted") {
        auto again = deliver(event("run.started", 300, R"(,"title":"Back")"), 300);
        ASSERT_TRUE(again.is_ok()) << again.message();
        EXPECT_EQ(*again, WebhookResult::kStale);
        EXPECT_EQ(column("state"), "deleted");
      }
    }
  }
}

TEST_F(MirrorRules, ADeletionOfAnUnknownRunLeavesATombstone) {
  auto result = deliver(event("run.deleted", 1650540100), 1650540200);
  ASSERT_TRUE(result.is_ok()) << result.message();
  EXPECT_EQ(*result, WebhookResult::kApplied);
  EXPECT_EQ(column("state"), "deleted");
  EXPECT_EQ(column("is_completed"), "0");
  auto started = deliver(event("run.started", 1650540300, R"(,"title":"x")"), 1650540300);
  ASSERT_TRUE(started.is_ok()) << started.message();
  EXPECT_EQ(column("state"), "deleted");
}

// Rule 2: a sender whose clock runs ahead gains nothing and freezes nothing.
TEST_F(MirrorRules, AWebhookIsObservedNoLaterThanItArrived) {
  const std::int64_t year_2100 = 4102444800;
  ASSERT_TRUE(
      deliver(event("run.started", year_2100, R"(,"title":"Future","cases_count":4)"), 1000));
  EXPECT_EQ(column("name"), "Future");
  EXPECT_EQ(column("details_at"), "1000");
  EXPECT_EQ(column("counts_at"), "1000");
  EXPECT_EQ(column("last_event_at"), "1000");
  // A later poll (Date after the arrival) corrects the details and counts.
  Observation poll;
  poll.run_id = kRun;
  poll.source = Source::kPoll;
  poll.observed_at = 1001;
  poll.set(Field::kName, Value{std::string("Renamed")});
  poll.set(Field::kPassedCount, Value{std::int64_t{2}});
  ASSERT_TRUE(store_->begin().is_ok());
  auto applied = store_->runs().apply(poll, 1001);
  ASSERT_TRUE(applied.is_ok()) << applied.message();
  ASSERT_TRUE(store_->commit().is_ok());
  EXPECT_EQ(column("name"), "Renamed");
  EXPECT_EQ(column("passed_count"), "2");
  // So does a later webhook from a sender whose clock is right.
  auto updated = deliver(event("run.updated", 1002, R"(,"cases_count":9)"), 1002);
  ASSERT_TRUE(updated.is_ok()) << updated.message();
  EXPECT_EQ(*updated, WebhookResult::kApplied);
  EXPECT_EQ(column("cases_count"), "9");
  // The journal keeps what the sender said.
  SQLite::Database db(path_, SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("SELECT max(event_ts) FROM webhook_events").getInt64(), year_2100);
}

// cases_added at the top of the range stays there instead of overflowing.
TEST_F(MirrorRules, CasesAddedSaturatesAtTheLargestCount) {
  const std::string big = std::to_string(INT64_MAX - 1);
  ASSERT_TRUE(deliver(event("run.started", 100, R"(,"cases_count":5)"), 100));
  auto added = deliver(event("run.updated", 200, R"(,"cases_added":)" + big), 200);
  ASSERT_TRUE(added.is_ok()) << added.message();
  EXPECT_EQ(column("cases_count"), std::to_string(INT64_MAX));
}

// /readyz's probe writes a page: it commits on a writable database and
// leaves the schema version as it was.
TEST_F(MirrorRules, TheWriteProbeCommitsAndChangesNothing) {
  ASSERT_TRUE(store_->begin().is_ok());
  ASSERT_TRUE(store_->probe_write().is_ok());
  ASSERT_TRUE(store_->commit().is_ok());
  auto db = open_database(path_, OpenOptions{});
  ASSERT_TRUE(db.is_ok()) << db.message();
  EXPECT_EQ(schema_version(*db.value()), latest_schema_version());
}

TEST(RoomToWrite, NamesAReadOnlyFileAndAMissingOne) {
  TempDir dir;
  {
    auto store = Store::open(dir.file("r.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
  }
  EXPECT_TRUE(check_room_to_write(dir.file("r.db")).is_ok());
  ASSERT_EQ(::chmod(dir.file("r.db").c_str(), 0444), 0);
  const Status ro = check_room_to_write(dir.file("r.db"));
  EXPECT_FALSE(ro.is_ok());
  EXPECT_NE(ro.message().find("read-only"), std::string::npos) << ro.message();
  EXPECT_FALSE(check_room_to_write(dir.file("missing.db")).is_ok());
}

}  // namespace
}  // namespace runsync
