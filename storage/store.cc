#include "storage/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <chrono>
#include <ctime>

namespace runsync {
namespace {

constexpr const char* kGroupColumns[kGroupCount] = {"details_at", "counts_at", "state_at",
                                                    "report_at"};

std::string run_columns() {
  std::string cols = "run_id";
  for (const auto& f : all_fields()) {
    cols += ", ";
    cols += f.column;
  }
  for (const char* g : kGroupColumns) {
    cols += ", ";
    cols += g;
  }
  cols += ", last_event_at, last_polled_at, updated_at, change_seq";
  return cols;
}

constexpr int kRunColumnCount = 1 + kFieldCount + kGroupCount + 4;

std::string upsert_sql() {
  std::string sql = "INSERT INTO runs (" + run_columns() + ") VALUES (";
  for (int i = 0; i < kRunColumnCount; ++i) sql += i ? ", ?" : "?";
  sql += ") ON CONFLICT (run_id) DO UPDATE SET ";
  const std::string cols = run_columns();
  bool first = true;
  std::size_t pos = 0;
  while (pos < cols.size()) {
    std::size_t end = cols.find(", ", pos);
    if (end == std::string::npos) end = cols.size();
    const std::string col = cols.substr(pos, end - pos);
    pos = end + 2;
    if (col == "run_id") continue;
    if (!first) sql += ", ";
    first = false;
    sql += col + " = excluded." + col;
  }
  return sql;
}

void bind_value(SQLite::Statement& st, int index, const Value& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) {
    st.bind(index, static_cast<std::int64_t>(*i));
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    st.bind(index, *s);
  } else {
    st.bind(index);
  }
}

void bind_time_or_null(SQLite::Statement& st, int index, std::int64_t t) {
  if (t == 0) {
    st.bind(index);
  } else {
    st.bind(index, static_cast<std::int64_t>(t));
  }
}

Value column_value(const SQLite::Column& c) {
  if (c.isNull()) return Value{};
  if (c.isInteger()) return Value{static_cast<std::int64_t>(c.getInt64())};
  return Value{c.getString()};
}

}  // namespace

const char* webhook_result_name(WebhookResult r) {
  switch (r) {
    case WebhookResult::kApplied: return "applied";
    case WebhookResult::kDuplicate: return "duplicate";
    case WebhookResult::kStale: return "stale";
    case WebhookResult::kIgnored: return "ignored";
  }
  return "?";
}

struct Store::Impl {
  std::unique_ptr<SQLite::Database> db;
  SQLite::Statement begin, commit, rollback, savepoint, release, rollback_to;
  SQLite::Statement select_run, upsert_run, insert_change, find_delivery, insert_delivery;

  explicit Impl(std::unique_ptr<SQLite::Database> d)
      : db(std::move(d)),
        begin(*db, "BEGIN IMMEDIATE"),
        commit(*db, "COMMIT"),
        rollback(*db, "ROLLBACK"),
        savepoint(*db, "SAVEPOINT job"),
        release(*db, "RELEASE job"),
        rollback_to(*db, "ROLLBACK TO job"),
        select_run(*db, "SELECT " + run_columns() + " FROM runs WHERE run_id = ?"),
        upsert_run(*db, upsert_sql()),
        insert_change(*db,
                      "INSERT INTO run_changes (run_id, changed_at, source, changes) "
                      "VALUES (?, ?, ?, ?)"),
        find_delivery(*db, "SELECT 1 FROM webhook_events WHERE delivery_key = ?"),
        insert_delivery(*db,
                        "INSERT INTO webhook_events (received_at, delivery_key, event_name, "
                        "project_code, run_id, event_ts, body, result) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)") {}

  static Status run(SQLite::Statement& st, const char* what) {
    try {
      st.reset();
      st.exec();
      return Status::ok();
    } catch (const std::exception& e) {
      try {
        st.reset();
      } catch (...) {
      }
      return Status::error(std::string(what) + ": " + e.what());
    }
  }

  StatusOr<std::optional<RunRecord>> load(std::int64_t run_id) {
    try {
      select_run.reset();
      select_run.clearBindings();
      select_run.bind(1, static_cast<std::int64_t>(run_id));
      if (!select_run.executeStep()) return std::optional<RunRecord>{};
      RunRecord r;
      int col = 0;
      r.run_id = select_run.getColumn(col++).getInt64();
      for (int i = 0; i < kFieldCount; ++i) r.values[i] = column_value(select_run.getColumn(col++));
      for (int g = 0; g < kGroupCount; ++g) r.group_at[g] = select_run.getColumn(col++).getInt64();
      r.last_event_at = select_run.getColumn(col++).getInt64();
      r.last_polled_at = select_run.getColumn(col++).getInt64();
      r.updated_at = select_run.getColumn(col++).getInt64();
      r.change_seq = select_run.getColumn(col++).getInt64();
      select_run.reset();
      return std::optional<RunRecord>{std::move(r)};
    } catch (const std::exception& e) {
      return Status::error(std::string("reading run: ") + e.what());
    }
  }

  Status write(RunRecord& r, const Decision& d, Source source, std::int64_t now) {
    try {
      if (!d.changes.empty()) {
        insert_change.reset();
        insert_change.bind(1, static_cast<std::int64_t>(r.run_id));
        insert_change.bind(2, static_cast<std::int64_t>(now));
        insert_change.bind(3, source_name(source));
        insert_change.bind(4, changes_to_json(d.changes));
        insert_change.exec();
        r.change_seq = db->getLastInsertRowid();
      }
      upsert_run.reset();
      int i = 1;
      upsert_run.bind(i++, static_cast<std::int64_t>(r.run_id));
      for (const auto& v : r.values) bind_value(upsert_run, i++, v);
      for (auto t : r.group_at) upsert_run.bind(i++, static_cast<std::int64_t>(t));
      bind_time_or_null(upsert_run, i++, r.last_event_at);
      bind_time_or_null(upsert_run, i++, r.last_polled_at);
      upsert_run.bind(i++, static_cast<std::int64_t>(r.updated_at));
      upsert_run.bind(i++, static_cast<std::int64_t>(r.change_seq));
      upsert_run.exec();
      return Status::ok();
    } catch (const std::exception& e) {
      return Status::error(std::string("writing run: ") + e.what());
    }
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::open(const std::string& path, const OpenOptions& options) {
  auto db = open_database(path, options);
  if (!db) return db.status();
  try {
    return std::unique_ptr<Store>(new Store(std::make_unique<Impl>(std::move(db).value())));
  } catch (const std::exception& e) {
    return Status::error(std::string("preparing statements: ") + e.what());
  }
}

SQLite::Database& Store::db() { return *impl_->db; }

Status Store::begin() { return Impl::run(impl_->begin, "BEGIN"); }
Status Store::commit() { return Impl::run(impl_->commit, "COMMIT"); }
void Store::rollback() {
  if (impl_->db->getHandle() && !sqlite3_get_autocommit(impl_->db->getHandle())) {
    (void)Impl::run(impl_->rollback, "ROLLBACK");
  }
}
Status Store::savepoint() { return Impl::run(impl_->savepoint, "SAVEPOINT"); }
Status Store::release() { return Impl::run(impl_->release, "RELEASE"); }
void Store::rollback_to_savepoint() {
  (void)Impl::run(impl_->rollback_to, "ROLLBACK TO");
  (void)Impl::run(impl_->release, "RELEASE");
}

StatusOr<std::optional<RunRecord>> Store::load_run(std::int64_t run_id) {
  return impl_->load(run_id);
}

StatusOr<ApplyResult> Store::apply_observation(const Observation& obs, std::int64_t now) {
  auto current = impl_->load(obs.run_id);
  if (!current) return current.status();
  Decision d = Reconciler::apply(current.value(), obs, now);
  ApplyResult result;
  result.outcome = d.outcome;
  result.created = d.created && d.write;
  if (!d.write) return result;
  if (Status s = impl_->write(d.next, d, obs.source, now); !s.is_ok()) return s;
  result.written = true;
  result.changed = !d.changes.empty();
  return result;
}

StatusOr<WebhookResult> Store::apply_webhook(const WebhookDelivery& delivery) {
  Impl& m = *impl_;
  try {
    m.find_delivery.reset();
    m.find_delivery.bind(1, delivery.delivery_key);
    const bool seen = m.find_delivery.executeStep();
    m.find_delivery.reset();
    if (seen) return WebhookResult::kDuplicate;
  } catch (const std::exception& e) {
    return Status::error(std::string("checking delivery: ") + e.what());
  }

  WebhookResult result = WebhookResult::kIgnored;
  const WebhookEvent& ev = delivery.event;
  if (ev.known) {
    auto applied = apply_observation(ev.observation, delivery.received_at);
    if (!applied) return applied.status();
    result = applied->outcome == Decision::Outcome::kApplied ? WebhookResult::kApplied
                                                             : WebhookResult::kStale;
  }
  try {
    SQLite::Statement& st = m.insert_delivery;
    st.reset();
    st.bind(1, static_cast<std::int64_t>(delivery.received_at));
    st.bind(2, delivery.delivery_key);
    st.bind(3, ev.event_name);
    st.bind(4, ev.project_code);
    if (ev.run_id) {
      st.bind(5, static_cast<std::int64_t>(*ev.run_id));
    } else {
      st.bind(5);
    }
    st.bind(6, static_cast<std::int64_t>(ev.timestamp));
    st.bind(7, delivery.body);
    st.bind(8, webhook_result_name(result));
    st.exec();
  } catch (const std::exception& e) {
    return Status::error(std::string("journaling delivery: ") + e.what());
  }
  return result;
}

Status Store::checkpoint() {
  try {
    impl_->db->exec("PRAGMA wal_checkpoint(PASSIVE)");
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("checkpoint: ") + e.what());
  }
}

}  // namespace runsync
