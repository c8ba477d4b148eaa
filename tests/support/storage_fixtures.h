// Helpers for the storage tests: a Store on a real file, poll
// observations, and reading rows back; webhook deliveries come from
// support/events.h.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/webhook_event.h"
#include "storage/database.h"
#include "storage/store.h"
#include "support/events.h"
#include "support/fake_clock.h"
#include "support/temp_dir.h"

namespace runsync::testing {

// The clock change numbers follow in these stores (change_numbers.h):
// fixed, so that two stores given the same writes hold the same rows.
inline constexpr std::int64_t kTestUnixMs = 1'700'000'000'000;

inline std::unique_ptr<Store> open_store(const std::string& path) {
  static const FakeClock clock(kTestUnixMs);  // nobody moves it
  OpenOptions options;
  options.clock = &clock;
  auto store = Store::open(path, options);
  EXPECT_TRUE(store.is_ok()) << store.message();
  return std::move(store).value();
}

inline std::int64_t count(SQLite::Database& db, const std::string& sql) {
  return db.execAndGet(sql).getInt64();
}

// An observation of run `id` by `source` at `at`, claiming `state` and no
// field yet.
inline Observation observation(std::int64_t id, Source source, std::int64_t at,
                               StateClaim state) {
  Observation o;
  o.run_id = id;
  o.source = source;
  o.observed_at = at;
  o.state = state;
  return o;
}

// A poll observation of run `id`, its fields derived from `version`.
inline Observation polled(std::int64_t id, std::int64_t at, int version, bool completed = false) {
  Observation o = observation(id, Source::kPoll, at,
                              completed ? StateClaim::kEnded : StateClaim::kActive);
  o.set(Field::kProjectId, Value{std::int64_t{1}});
  o.set(Field::kName, Value{"Run " + std::to_string(id) + " v" + std::to_string(version)});
  o.set(Field::kDescription, version % 2 ? Value{} : Value{std::string(40, 'd')});
  o.set(Field::kPassedCount, Value{std::int64_t{version}});
  o.set(Field::kPlanId, Value{});
  o.set(Field::kPlanName, Value{});
  return o;
}

// A poll's finding that run `id` no longer exists (get_run said so).
inline Observation deleted_by_poll(std::int64_t id, std::int64_t at) {
  return observation(id, Source::kPoll, at, StateClaim::kDeleted);
}

// Every row of `runs` and `run_changes`, as text, in key order.
inline std::vector<std::string> dump(SQLite::Database& db) {
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

// The rows of webhook_events in the database at `path`, read over a
// connection of its own.
inline std::int64_t journaled(const std::string& path) {
  OpenOptions read_only;
  read_only.read_only = true;
  auto db = open_database(path, read_only);
  EXPECT_TRUE(db.is_ok()) << db.message();
  return count(*db.value(), "SELECT count(*) FROM webhook_events");
}

// A test with a Store on a fresh database file, dir.file("s.db").
class StoreTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::unique_ptr<Store> store = open_store(dir.file("s.db"));
};

}  // namespace runsync::testing
