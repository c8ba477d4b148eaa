#include "storage/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <unordered_map>

#include "storage/wal_write_vfs.h"

namespace runsync {
namespace {

constexpr const char* kGroupColumns[kGroupCount] = {"details_at", "counts_at", "state_at",
                                                    "report_at"};

constexpr int kRunColumnCount = 1 + kFieldCount + kGroupCount + 4;

// The columns of `runs` in the order every statement here reads and binds
// them (see read_run and bind_run_column).
const std::array<std::string, kRunColumnCount>& run_column_names() {
  static const std::array<std::string, kRunColumnCount> names = [] {
    std::array<std::string, kRunColumnCount> n;
    int c = 0;
    n[c++] = "run_id";
    for (const auto& f : all_fields()) n[c++] = f.column;
    for (const char* g : kGroupColumns) n[c++] = g;
    for (const char* x : {"last_event_at", "last_polled_at", "updated_at", "change_seq"}) n[c++] = x;
    return n;
  }();
  return names;
}

std::string run_columns() {
  std::string cols;
  for (const auto& name : run_column_names()) {
    if (!cols.empty()) cols += ", ";
    cols += name;
  }
  return cols;
}

// Stored rows read per query by apply_observations: a page of get_runs.
constexpr int kLoadChunk = 250;

std::string select_runs_sql() {
  std::string sql = "SELECT " + run_columns() + " FROM runs WHERE run_id IN (";
  for (int i = 0; i < kLoadChunk; ++i) sql += i ? ", ?" : "?";
  return sql + ")";
}

// "INSERT INTO table (columns) VALUES (?, ...), ..." for `rows` rows of
// `count` columns.
std::string insert_rows_sql(const std::string& table, const std::string& columns, int count,
                            int rows) {
  std::string sql = "INSERT INTO " + table + " (" + columns + ") VALUES ";
  for (int r = 0; r < rows; ++r) {
    sql += r ? ", (" : "(";
    for (int i = 0; i < count; ++i) sql += i ? ", ?" : "?";
    sql += ")";
  }
  return sql;
}

std::string insert_run_sql(int rows) {
  return insert_rows_sql("runs", run_columns(), kRunColumnCount, rows);
}

// New runs a batch of observations writes per INSERT (see Store::Impl::Pending).
constexpr int kInsertChunk = 32;
constexpr int kChangeColumns = 5;  // seq, run_id, changed_at, source, changes

std::string insert_changes_sql(int rows) {
  return insert_rows_sql("run_changes", "seq, run_id, changed_at, source, changes",
                         kChangeColumns, rows);
}

// Bit c set: column c of run_columns() is written.
using ColumnMask = std::uint64_t;
static_assert(kRunColumnCount <= 64, "ColumnMask holds one bit per column");

// "UPDATE runs SET a = ?1, b = ?2 WHERE run_id = ?3" for the columns of
// `mask` in run_columns() order.
std::string update_run_sql(ColumnMask mask) {
  std::string sql = "UPDATE runs SET ";
  int n = 0;
  for (int c = 1; c < kRunColumnCount; ++c) {
    if (!(mask & (ColumnMask{1} << c))) continue;
    if (n++) sql += ", ";
    sql += run_column_names()[c] + " = ?";
  }
  return sql + " WHERE run_id = ?";
}

// The columns whose stored value differs between `before` and `after`.
ColumnMask changed_columns(const RunRecord& before, const RunRecord& after) {
  ColumnMask mask = 0;
  int c = 1;
  for (int i = 0; i < kFieldCount; ++i, ++c) {
    if (before.values[i] != after.values[i]) mask |= ColumnMask{1} << c;
  }
  for (int g = 0; g < kGroupCount; ++g, ++c) {
    if (before.group_at[g] != after.group_at[g]) mask |= ColumnMask{1} << c;
  }
  if (before.last_event_at != after.last_event_at) mask |= ColumnMask{1} << c;
  ++c;
  if (before.last_polled_at != after.last_polled_at) mask |= ColumnMask{1} << c;
  ++c;
  if (before.updated_at != after.updated_at) mask |= ColumnMask{1} << c;
  ++c;
  if (before.change_seq != after.change_seq) mask |= ColumnMask{1} << c;
  return mask;
}

// The hot reads use the C API directly: SQLiteCpp's Column objects (a
// shared_ptr copy each) cost more than the read itself at ~50 columns a row.
struct StatementFinalizer {
  void operator()(sqlite3_stmt* st) const { sqlite3_finalize(st); }
};
using RawStatement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

RawStatement prepare_raw(SQLite::Database& db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  const int rc =
      sqlite3_prepare_v3(db.getHandle(), sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc != SQLITE_OK) throw SQLite::Exception(db.getHandle(), rc);
  return RawStatement(st);
}

// Steps `st`: true on a row, false when done; throws on an error.
bool step_raw(sqlite3_stmt* st) {
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw SQLite::Exception(sqlite3_db_handle(st), rc);
}

// Binds `text` without a copy: it must outlive the statement's next step.
void bind_text(sqlite3_stmt* st, int index, std::string_view text) {
  sqlite3_bind_text(st, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

// Binds column `col` of run_columns() from `r` to parameter `index`. Text
// is bound without a copy: `r` must outlive the statement's next step.
// A zero time of last_event_at / last_polled_at is stored as NULL.
void bind_run_column(sqlite3_stmt* st, int index, const RunRecord& r, int col) {
  auto bind_int = [&](std::int64_t v) { sqlite3_bind_int64(st, index, v); };
  auto bind_time = [&](std::int64_t t) {
    if (t == 0) {
      sqlite3_bind_null(st, index);
    } else {
      sqlite3_bind_int64(st, index, t);
    }
  };
  if (col == 0) return bind_int(r.run_id);
  if (col <= kFieldCount) {
    const Value& v = r.values[col - 1];
    if (const auto* i = std::get_if<std::int64_t>(&v)) return bind_int(*i);
    if (const auto* t = std::get_if<std::string>(&v)) return bind_text(st, index, *t);
    sqlite3_bind_null(st, index);
    return;
  }
  col -= 1 + kFieldCount;
  if (col < kGroupCount) return bind_int(r.group_at[col]);
  switch (col - kGroupCount) {
    case 0: return bind_time(r.last_event_at);
    case 1: return bind_time(r.last_polled_at);
    case 2: return bind_int(r.updated_at);
    default: return bind_int(r.change_seq);
  }
}

// Steps a statement that returns no rows; throws on an error.
void exec_raw(sqlite3_stmt* st) {
  sqlite3_reset(st);
  const int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    sqlite3_reset(st);
    throw SQLite::Exception(sqlite3_db_handle(st), rc);
  }
  sqlite3_reset(st);
}

// A column as a Value: NULL, INTEGER, or else the bytes of its text (through
// the blob API, as SQLiteCpp's getString reads it).
Value raw_value(sqlite3_stmt* st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: return Value{};
    case SQLITE_INTEGER: return Value{static_cast<std::int64_t>(sqlite3_column_int64(st, i))};
    default: {
      const auto* data = static_cast<const char*>(sqlite3_column_blob(st, i));
      const auto size = static_cast<std::size_t>(sqlite3_column_bytes(st, i));
      return Value{std::string(data ? data : "", size)};
    }
  }
}

// The row `st` is on, its columns in run_columns() order.
RunRecord read_run(sqlite3_stmt* st) {
  RunRecord r;
  int col = 0;
  r.run_id = sqlite3_column_int64(st, col++);
  for (int i = 0; i < kFieldCount; ++i) r.values[i] = raw_value(st, col++);
  for (int g = 0; g < kGroupCount; ++g) r.group_at[g] = sqlite3_column_int64(st, col++);
  r.last_event_at = sqlite3_column_int64(st, col++);
  r.last_polled_at = sqlite3_column_int64(st, col++);
  r.updated_at = sqlite3_column_int64(st, col++);
  r.change_seq = sqlite3_column_int64(st, col++);
  return r;
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

// The runs the writer wrote last, as stored, so that the next event of a
// run in flight skips the SELECT (a sixth of a webhook's write). Valid while
// no other connection writes: Store::begin() empties it when PRAGMA
// data_version says one did, and any rollback empties it. Bounded; the
// oldest entries go first.
class RowCache {
 public:
  // ~1.6 KB a run: at most ~20 MB.
  static constexpr std::size_t kCapacity = 12'000;

  const RunRecord* find(std::int64_t run_id) const {
    auto it = rows_.find(run_id);
    return it == rows_.end() ? nullptr : &it->second;
  }
  // Remembers `r` (the row just written), evicting the oldest entry when full.
  void put(RunRecord&& r) {
    const std::int64_t id = r.run_id;
    auto [it, added] = rows_.try_emplace(id, std::move(r));
    if (!added) {
      it->second = std::move(r);
      return;
    }
    order_.push_back(id);
    if (rows_.size() > kCapacity) {
      rows_.erase(order_.front());
      order_.pop_front();
    }
  }
  // Replaces the entry of `r`'s run if there is one: keeps the cache true
  // without filling it with runs nobody may send events about.
  void refresh(const RunRecord& r) {
    if (auto it = rows_.find(r.run_id); it != rows_.end()) it->second = r;
  }
  void clear() {
    rows_.clear();
    order_.clear();
  }

 private:
  std::unordered_map<std::int64_t, RunRecord> rows_;
  std::deque<std::int64_t> order_;  // insertion order
};

namespace {

// fdatasync of the -wal file through a descriptor of its own.
class FileWalSync final : public WalSync {
 public:
  explicit FileWalSync(int fd) : fd_(fd) {}
  ~FileWalSync() override { ::close(fd_); }
  FileWalSync(const FileWalSync&) = delete;
  FileWalSync& operator=(const FileWalSync&) = delete;
  Status sync() override {
    if (::fdatasync(fd_) == 0) return Status::ok();
    return Status::error(std::string("syncing the WAL: ") + std::strerror(errno));
  }

 private:
  int fd_;
};

}  // namespace

struct Store::Impl {
  std::unique_ptr<SQLite::Database> db;
  SQLite::Statement begin, commit, rollback, savepoint, release, rollback_to;
  SQLite::Statement insert_change;
  RawStatement insert_delivery, select_run, select_runs, data_version;
  RowCache cache;
  std::int64_t last_data_version = -1;
  bool may_split_sync = false;  // opened with Durability::kFull and no auto checkpoint
  bool split_sync = false;      // commit() leaves the WAL sync to a WalSync
  // UPDATE statements by the set of columns they write, prepared on first
  // use: a write touches only what changed, so SQLite checks only the
  // constraints and rewrites only the index entries of those columns.
  std::unordered_map<ColumnMask, RawStatement> update_run;
  // The new runs of a batch of observations, written together by
  // flush_pending(): one INSERT of up to kInsertChunk rows per table costs
  // about a third less per run than a statement each (SQLite sets each
  // statement up once and keeps its cursors on the pages it just wrote).
  struct Pending {
    RunRecord row;
    std::string changes;  // the change-log JSON; empty: no change row
    Source source = Source::kPoll;
    std::int64_t changed_at = 0;
  };
  std::vector<Pending> pending;
  // INSERTs of n rows (index n), prepared on first use; a single new run
  // (write()) uses insert_runs_n[1], prepared with the rest.
  std::vector<RawStatement> insert_runs_n, insert_changes_n;
  RawStatement max_change_seq;

  explicit Impl(std::unique_ptr<SQLite::Database> d)
      : db(std::move(d)),
        begin(*db, "BEGIN IMMEDIATE"),
        commit(*db, "COMMIT"),
        rollback(*db, "ROLLBACK"),
        savepoint(*db, "SAVEPOINT job"),
        release(*db, "RELEASE job"),
        rollback_to(*db, "ROLLBACK TO job"),
        insert_change(*db,
                      "INSERT INTO run_changes (run_id, changed_at, source, changes) "
                      "VALUES (?, ?, ?, ?)"),
        // A delivery key seen before inserts nothing: the duplicate check
        // and the journal row are one statement.
        insert_delivery(prepare_raw(*db,
                                    "INSERT INTO webhook_events (received_at, delivery_key, "
                                    "event_name, project_code, run_id, event_ts, body, result) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                                    "ON CONFLICT (delivery_key) DO NOTHING")),
        select_run(prepare_raw(*db, "SELECT " + run_columns() + " FROM runs WHERE run_id = ?")),
        select_runs(prepare_raw(*db, select_runs_sql())),
        data_version(prepare_raw(*db, "PRAGMA data_version")),
        insert_runs_n(kInsertChunk + 1),
        insert_changes_n(kInsertChunk + 1),
        max_change_seq(prepare_raw(*db, "SELECT max(seq) FROM run_changes")) {
    insert_runs_n[1] = prepare_raw(*db, insert_run_sql(1));
  }

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
    if (const RunRecord* cached = cache.find(run_id)) return std::optional<RunRecord>{*cached};
    sqlite3_stmt* st = select_run.get();
    try {
      sqlite3_reset(st);
      sqlite3_bind_int64(st, 1, run_id);
      std::optional<RunRecord> row;
      if (step_raw(st)) row = read_run(st);
      sqlite3_reset(st);
      return row;
    } catch (const std::exception& e) {
      sqlite3_reset(st);
      return Status::error(std::string("reading run: ") + e.what());
    }
  }

  // Reads the stored rows of `ids` into `rows`, at the places `index` gives
  // for their run ids, kLoadChunk per query; ids without a row are left as
  // they are.
  Status load_many(std::span<const std::int64_t> ids,
                   const std::unordered_map<std::int64_t, std::size_t>& index,
                   std::vector<std::optional<RunRecord>>& rows) {
    sqlite3_stmt* st = select_runs.get();
    try {
      for (std::size_t start = 0; start < ids.size(); start += kLoadChunk) {
        const std::size_t n = std::min<std::size_t>(kLoadChunk, ids.size() - start);
        sqlite3_reset(st);
        for (std::size_t i = 0; i < kLoadChunk; ++i) {
          // NULL never matches: the unused places of the last chunk.
          if (i < n) {
            sqlite3_bind_int64(st, static_cast<int>(i + 1), ids[start + i]);
          } else {
            sqlite3_bind_null(st, static_cast<int>(i + 1));
          }
        }
        while (step_raw(st)) rows[index.at(sqlite3_column_int64(st, 0))] = read_run(st);
      }
      sqlite3_reset(st);
      return Status::ok();
    } catch (const std::exception& e) {
      sqlite3_reset(st);
      return Status::error(std::string("reading runs: ") + e.what());
    }
  }

  // Reconciles `obs` with `current` (the stored row or nullopt) and writes
  // what the Reconciler decides. With `keep`, leaves `current` as the row
  // now stored (for a later observation of the same run); `batch`: see
  // write_decision.
  StatusOr<ApplyResult> apply(std::optional<RunRecord>& current, const Observation& obs,
                              std::int64_t now, bool keep, bool batch = false) {
    Decision d = Reconciler::apply(current, obs, now);
    return write_decision(current, d, obs.source, now, keep, batch);
  }

  // Writes what `d` (decided on `current`) says, if anything. With
  // `batch`, a new run that is not observed again (`keep`) waits in
  // `pending` for flush_pending(), and any other write flushes it first, so
  // the change log keeps the order of the observations.
  StatusOr<ApplyResult> write_decision(std::optional<RunRecord>& current, Decision& d,
                                       Source source, std::int64_t now, bool keep,
                                       bool batch = false) {
    ApplyResult result;
    result.outcome = d.outcome;
    result.created = d.created && d.write;
    if (!d.write) return result;
    result.written = true;
    result.changed = !d.changes.empty();
    if (batch && !current && !keep) {
      // Nothing else reads it before the flush: not the cache, which holds
      // only rows that exist.
      // The JSON first: it reads d.next, which the row then takes.
      std::string changes =
          d.changes.empty() ? std::string() : changes_to_json(d.changes, d.next);
      pending.push_back({std::move(d.next), std::move(changes), source, now});
      return result;
    }
    if (batch) {
      if (Status s = flush_pending(); !s.is_ok()) return s;
    }
    if (Status s = write(current, d.next, d, source, now); !s.is_ok()) return s;
    // The cache is for webhook traffic, which comes back to the same runs
    // within seconds; a poll or a command only keeps it true. (A first sync
    // that cached all it wrote spent ~4% of its time copying rows in and
    // evicting them again.)
    if (source != Source::kWebhook) {
      cache.refresh(d.next);
      if (keep) current = std::move(d.next);
    } else if (keep) {
      cache.put(RunRecord(d.next));
      current = std::move(d.next);
    } else {
      cache.put(std::move(d.next));
    }
    return result;
  }

  // Inserts the pending new runs and their change-log rows, kInsertChunk
  // rows per statement, with change_seq numbers following the largest in
  // the log, in the order the runs were observed (as a row each would get).
  Status flush_pending() {
    if (pending.empty()) return Status::ok();
    try {
      sqlite3_stmt* max_seq = max_change_seq.get();
      sqlite3_reset(max_seq);
      std::int64_t seq = step_raw(max_seq) ? sqlite3_column_int64(max_seq, 0) : 0;
      sqlite3_reset(max_seq);
      std::vector<const Pending*> changed;
      changed.reserve(pending.size());
      for (Pending& p : pending) {
        if (p.changes.empty()) continue;
        p.row.change_seq = ++seq;
        changed.push_back(&p);
      }
      // `rows` rows through INSERTs of up to kInsertChunk rows (by_size[n]:
      // the statement of n rows, made by sql(n)); bind(st, index, row) binds
      // one row's values from parameter `index` on, advancing it.
      auto insert = [this](std::size_t rows, std::vector<RawStatement>& by_size, auto&& sql,
                           auto&& bind) {
        for (std::size_t start = 0; start < rows; start += kInsertChunk) {
          const int n = static_cast<int>(std::min<std::size_t>(kInsertChunk, rows - start));
          RawStatement& stmt = by_size[n];
          if (!stmt) stmt = prepare_raw(*db, sql(n));
          int index = 1;
          for (int k = 0; k < n; ++k) bind(stmt.get(), index, start + k);
          exec_raw(stmt.get());
        }
      };
      insert(changed.size(), insert_changes_n, insert_changes_sql,
             [&](sqlite3_stmt* st, int& index, std::size_t row) {
               const Pending& p = *changed[row];
               sqlite3_bind_int64(st, index++, p.row.change_seq);
               sqlite3_bind_int64(st, index++, p.row.run_id);
               sqlite3_bind_int64(st, index++, p.changed_at);
               bind_text(st, index++, source_name(p.source));
               bind_text(st, index++, p.changes);
             });
      insert(pending.size(), insert_runs_n, insert_run_sql,
             [&](sqlite3_stmt* st, int& index, std::size_t row) {
               for (int c = 0; c < kRunColumnCount; ++c) {
                 bind_run_column(st, index++, pending[row].row, c);
               }
             });
      pending.clear();
      return Status::ok();
    } catch (const std::exception& e) {
      pending.clear();
      return Status::error(std::string("writing new runs: ") + e.what());
    }
  }

  // Stores `r`: an INSERT of every column when there is no row yet
  // (`before` is nullopt), else an UPDATE of the columns that differ.
  Status write(const std::optional<RunRecord>& before, RunRecord& r, const Decision& d,
               Source source, std::int64_t now) {
    try {
      if (!d.changes.empty()) {
        insert_change.reset();
        insert_change.bind(1, static_cast<std::int64_t>(r.run_id));
        insert_change.bind(2, static_cast<std::int64_t>(now));
        insert_change.bindNoCopy(3, source_name(source));
        const std::string changes = changes_to_json(d.changes, d.next);
        insert_change.bindNoCopy(4, changes);
        insert_change.exec();
        r.change_seq = db->getLastInsertRowid();
      }
      if (!before) {
        sqlite3_stmt* st = insert_runs_n[1].get();
        for (int c = 0; c < kRunColumnCount; ++c) bind_run_column(st, c + 1, r, c);
        exec_raw(st);
        return Status::ok();
      }
      const ColumnMask mask = changed_columns(*before, r);
      if (mask == 0) return Status::ok();
      auto it = update_run.find(mask);
      if (it == update_run.end()) {
        // Masks seen in practice are a few dozen; this only bounds the odd case.
        if (update_run.size() >= 512) update_run.clear();
        it = update_run.emplace(mask, prepare_raw(*db, update_run_sql(mask))).first;
      }
      sqlite3_stmt* st = it->second.get();
      int index = 1;
      for (int c = 1; c < kRunColumnCount; ++c) {
        if (mask & (ColumnMask{1} << c)) bind_run_column(st, index++, r, c);
      }
      sqlite3_bind_int64(st, index, r.run_id);
      exec_raw(st);
      if (sqlite3_changes(db->getHandle()) != 1) {
        return Status::error("writing run " + std::to_string(r.run_id) + ": the row is gone");
      }
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
    auto impl = std::make_unique<Impl>(std::move(db).value());
    impl->may_split_sync = options.durability == Durability::kFull && !options.auto_checkpoint &&
                           !options.read_only;
    return std::unique_ptr<Store>(new Store(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::error(std::string("preparing statements: ") + e.what());
  }
}

SQLite::Database& Store::db() { return *impl_->db; }

Status Store::probe_write() {
  try {
    // Setting user_version always dirties page 1, even to the same value.
    impl_->db->exec("PRAGMA user_version = " + std::to_string(schema_version(*impl_->db)));
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("writing: ") + e.what());
  }
}

Status Store::begin() {
  Status s = Impl::run(impl_->begin, "BEGIN");
  if (!s.is_ok()) return s;
  // Another connection committed since our last transaction: what the
  // cache holds may be stale.
  sqlite3_stmt* st = impl_->data_version.get();
  sqlite3_reset(st);
  const int rc = sqlite3_step(st);
  const std::int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -2;
  sqlite3_reset(st);
  if (version != impl_->last_data_version) impl_->cache.clear();
  impl_->last_data_version = version;
  return s;
}
Status Store::commit() {
  if (!impl_->split_sync) return Impl::run(impl_->commit, "COMMIT");
  // If the WAL is not on the gathering VFS, the COMMIT syncs as usual:
  // slower, never less durable.
  sqlite3* handle = impl_->db->getHandle();
  const bool deferred = wal_defer_commit_syncs(handle, true);
  Status s = Impl::run(impl_->commit, "COMMIT");
  if (deferred) wal_defer_commit_syncs(handle, false);
  return s;
}

StatusOr<std::unique_ptr<WalSync>> Store::split_commit_sync() {
  if (!impl_->may_split_sync) {
    return Status::error("commit and sync can be split only with synchronous = full and "
                         "checkpoints off the writer's connection");
  }
  sqlite3* handle = impl_->db->getHandle();
  const char* db_name = sqlite3_db_filename(handle, "main");
  if (db_name == nullptr || *db_name == '\0') return Status::error("the database has no file");
  const std::string wal_path = sqlite3_filename_wal(db_name);
  const int fd = ::open(wal_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::error("opening " + wal_path + ": " + std::strerror(errno));
  std::unique_ptr<WalSync> wal_sync = std::make_unique<FileWalSync>(fd);
  // SQLite syncs the directory with a new file's first sync, which is now
  // ours: make the -wal file's name durable once, here.
  const std::string dir = std::filesystem::path(wal_path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Status::error("opening " + dir + ": " + std::strerror(errno));
  const int rc = ::fsync(dir_fd);
  const int err = errno;
  ::close(dir_fd);
  if (rc != 0) return Status::error("syncing " + dir + ": " + std::strerror(err));
  if (Status s = wal_sync->sync(); !s.is_ok()) return s;
  impl_->split_sync = true;
  return wal_sync;
}

void Store::rollback() {
  impl_->cache.clear();
  if (impl_->db->getHandle() && !sqlite3_get_autocommit(impl_->db->getHandle())) {
    (void)Impl::run(impl_->rollback, "ROLLBACK");
  }
}
Status Store::savepoint() { return Impl::run(impl_->savepoint, "SAVEPOINT"); }
Status Store::release() { return Impl::run(impl_->release, "RELEASE"); }
void Store::rollback_to_savepoint() {
  impl_->cache.clear();
  (void)Impl::run(impl_->rollback_to, "ROLLBACK TO");
  (void)Impl::run(impl_->release, "RELEASE");
}

StatusOr<std::optional<RunRecord>> Store::load_run(std::int64_t run_id) {
  return impl_->load(run_id);
}

StatusOr<ApplyResult> Store::apply_observation(const Observation& obs, std::int64_t now) {
  auto current = impl_->load(obs.run_id);
  if (!current) return current.status();
  return impl_->apply(current.value(), obs, now, /*keep=*/false);
}

StatusOr<std::vector<ApplyResult>> Store::apply_observations(
    std::span<const Observation> observations, std::int64_t now) {
  // slot[i]: where observation i's run lives in `rows`; `uses` counts the
  // observations of each run still to apply.
  std::unordered_map<std::int64_t, std::size_t> index;
  index.reserve(observations.size());
  std::vector<std::int64_t> ids;
  std::vector<std::size_t> slot;
  std::vector<int> uses;
  ids.reserve(observations.size());
  slot.reserve(observations.size());
  for (const Observation& o : observations) {
    auto [it, added] = index.try_emplace(o.run_id, ids.size());
    if (added) {
      ids.push_back(o.run_id);
      uses.push_back(0);
    }
    slot.push_back(it->second);
    ++uses[it->second];
  }
  std::vector<std::optional<RunRecord>> rows(ids.size());
  if (Status s = impl_->load_many(ids, index, rows); !s.is_ok()) return s;
  std::vector<ApplyResult> results;
  results.reserve(observations.size());
  impl_->pending.clear();
  for (std::size_t i = 0; i < observations.size(); ++i) {
    const std::size_t at = slot[i];
    auto r = impl_->apply(rows[at], observations[i], now, /*keep=*/--uses[at] > 0,
                          /*batch=*/true);
    if (!r) {
      impl_->pending.clear();
      return r.status();
    }
    results.push_back(r.value());
  }
  if (Status s = impl_->flush_pending(); !s.is_ok()) return s;
  return results;
}

StatusOr<WebhookResult> Store::apply_webhook(const WebhookDelivery& delivery) {
  Impl& m = *impl_;
  const WebhookEvent& ev = delivery.event;
  // Decide first (pure), then journal: the journal row carries the result,
  // and its INSERT is also the duplicate check. Nothing else is written for
  // a duplicate.
  std::optional<RunRecord> current;
  if (ev.known) {
    auto loaded = m.load(ev.observation.run_id);
    if (!loaded) return loaded.status();
    current = std::move(loaded).value();
  }
  // Rule 2: observed at its timestamp, but never later than it arrived, so
  // a sender whose clock runs ahead cannot pin the run. Copied only then.
  const Observation* observation = &ev.observation;
  std::optional<Observation> clamped;
  if (ev.known && observation->observed_at > delivery.received_at) {
    clamped = *observation;
    clamped->observed_at = delivery.received_at;
    observation = &*clamped;
  }
  // Made in place (not assigned): a decision holds a whole row.
  Decision decision = ev.known ? Reconciler::apply(current, *observation, delivery.received_at)
                               : Decision{};
  WebhookResult result = WebhookResult::kIgnored;
  if (ev.known) {
    result = decision.outcome == Decision::Outcome::kApplied ? WebhookResult::kApplied
                                                             : WebhookResult::kStale;
  }
  sqlite3_stmt* st = m.insert_delivery.get();
  try {
    sqlite3_bind_int64(st, 1, delivery.received_at);
    bind_text(st, 2, delivery.delivery_key);
    bind_text(st, 3, ev.event_name);
    bind_text(st, 4, ev.project_code);
    if (ev.run_id) {
      sqlite3_bind_int64(st, 5, *ev.run_id);
    } else {
      sqlite3_bind_null(st, 5);
    }
    sqlite3_bind_int64(st, 6, ev.timestamp);
    bind_text(st, 7, delivery.body);
    bind_text(st, 8, webhook_result_name(result));
    exec_raw(st);
  } catch (const std::exception& e) {
    return Status::error(std::string("journaling delivery: ") + e.what());
  }
  if (sqlite3_changes(m.db->getHandle()) == 0) return WebhookResult::kDuplicate;
  if (ev.known) {
    auto written = m.write_decision(current, decision, observation->source,
                                    delivery.received_at, /*keep=*/false);
    if (!written) return written.status();
  }
  return result;
}

StatusOr<std::vector<KnownRun>> Store::known_runs(std::int64_t project_id,
                                                  const std::string& project_code,
                                                  bool with_polled) {
  try {
    // One row per run of the project, so the C API (see prepare_raw). Two
    // queries rather than an OR, which SQLite answers by looking every row
    // up in the table: the first is covered by runs_by_project_state when
    // it does not ask for last_polled_at.
    RawStatement st = prepare_raw(
        *impl_->db, std::string("SELECT run_id, state, ") +
                        (with_polled ? "last_polled_at IS NOT NULL" : "0") +
                        " FROM runs WHERE project_id = ?1 UNION ALL "
                        "SELECT run_id, state, last_polled_at IS NOT NULL FROM runs "
                        "WHERE project_id IS NULL AND project_code = ?2");
    sqlite3_bind_int64(st.get(), 1, project_id);
    bind_text(st.get(), 2, project_code);
    std::vector<KnownRun> out;
    while (step_raw(st.get())) {
      KnownRun r;
      r.run_id = sqlite3_column_int64(st.get(), 0);
      const auto* state = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1));
      r.state = parse_state(state ? state : "").value_or(RunState::kActive);
      r.polled = sqlite3_column_int(st.get(), 2) != 0;
      out.push_back(r);
    }
    return out;
  } catch (const std::exception& e) {
    return Status::error(std::string("listing known runs: ") + e.what());
  }
}

StatusOr<std::int64_t> Store::begin_poll_cycle(std::int64_t project_id, PollKind kind,
                                               std::int64_t started_at) {
  try {
    SQLite::Statement st(*impl_->db,
                         "INSERT INTO poll_cycles (project_id, kind, started_at) VALUES (?, ?, ?)");
    st.bind(1, project_id);
    st.bind(2, poll_kind_name(kind));
    st.bind(3, started_at);
    st.exec();
    return static_cast<std::int64_t>(impl_->db->getLastInsertRowid());
  } catch (const std::exception& e) {
    return Status::error(std::string("recording poll cycle: ") + e.what());
  }
}

Status Store::finish_poll_cycle(std::int64_t id, const PollCycleStats& stats,
                                const std::optional<std::string>& error,
                                std::int64_t finished_at) {
  try {
    SQLite::Statement st(*impl_->db,
                         "UPDATE poll_cycles SET finished_at = ?, pages = ?, requests = ?, "
                         "runs_seen = ?, runs_changed = ?, runs_deleted = ?, error = ? "
                         "WHERE id = ?");
    st.bind(1, finished_at);
    st.bind(2, stats.pages);
    st.bind(3, stats.requests);
    st.bind(4, stats.runs_seen);
    st.bind(5, stats.runs_changed);
    st.bind(6, stats.runs_deleted);
    if (error) {
      st.bind(7, *error);
    } else {
      st.bind(7);
    }
    st.bind(8, id);
    st.exec();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("recording poll cycle: ") + e.what());
  }
}

StatusOr<std::int64_t> Store::queue_command(const OutboxCommand& c, std::int64_t now) {
  try {
    SQLite::Statement st(*impl_->db,
                         "INSERT INTO outbox (command, target, body, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)");
    st.bind(1, command_name(c.kind));
    st.bind(2, c.target);
    st.bind(3, c.body.dump());
    st.bind(4, now);
    st.bind(5, now);
    st.exec();
    return static_cast<std::int64_t>(impl_->db->getLastInsertRowid());
  } catch (const std::exception& e) {
    return Status::error(std::string("queueing command: ") + e.what());
  }
}

StatusOr<std::optional<OutboxCommand>> Store::next_pending_command(std::int64_t now) {
  try {
    for (;;) {
      SQLite::Statement st(*impl_->db,
                           "SELECT id, command, target, body, created_at FROM outbox "
                           "WHERE state = 'pending' ORDER BY id LIMIT 1");
      if (!st.executeStep()) return std::optional<OutboxCommand>{};
      OutboxCommand c;
      c.id = st.getColumn(0).getInt64();
      c.target = st.getColumn(2).getInt64();
      c.created_at = st.getColumn(4).getInt64();
      auto kind = parse_command_name(st.getColumn(1).getString());
      c.body = nlohmann::json::parse(st.getColumn(3).getString(), nullptr, false);
      Status valid = Status::ok();
      if (!kind) {
        valid = Status::error("unknown command '" + st.getColumn(1).getString() + "'");
      } else if (c.body.is_discarded()) {
        valid = Status::error(std::string(command_name(*kind)) + ": body is not valid JSON");
      } else {
        c.kind = *kind;
        valid = validate_command(c);
      }
      st.reset();
      if (valid.is_ok()) return std::optional<OutboxCommand>{std::move(c)};
      Status marked = update_command(c.id, "failed", false, valid.message(), std::nullopt, now);
      if (!marked.is_ok()) return marked;
    }
  } catch (const std::exception& e) {
    return Status::error(std::string("reading the outbox: ") + e.what());
  }
}

Status Store::update_command(std::int64_t id, std::string_view state, bool count_attempt,
                             const std::optional<std::string>& error,
                             const std::optional<std::string>& result, std::int64_t now) {
  try {
    SQLite::Statement st(*impl_->db,
                         "UPDATE outbox SET state = ?, attempts = attempts + ?, last_error = ?, "
                         "result = ?, updated_at = ? WHERE id = ?");
    st.bind(1, std::string(state));
    st.bind(2, count_attempt ? 1 : 0);
    if (error) {
      st.bind(3, *error);
    } else {
      st.bind(3);
    }
    if (result) {
      st.bind(4, *result);
    } else {
      st.bind(4);
    }
    st.bind(5, now);
    st.bind(6, id);
    st.exec();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("updating the outbox: ") + e.what());
  }
}

StatusOr<int> Store::recover_sending_commands(std::int64_t now) {
  try {
    SQLite::Statement st(*impl_->db,
                         "UPDATE outbox SET state = 'unknown', updated_at = ?, last_error = "
                         "'runsync stopped while the request was in flight; outcome unknown' "
                         "WHERE state = 'sending'");
    st.bind(1, now);
    return st.exec();
  } catch (const std::exception& e) {
    return Status::error(std::string("recovering the outbox: ") + e.what());
  }
}

StatusOr<std::vector<OutboxCommand>> Store::unknown_add_runs() {
  try {
    SQLite::Statement st(*impl_->db,
                         "SELECT id, target, body, created_at FROM outbox "
                         "WHERE state = 'unknown' AND command = 'add_run' ORDER BY id");
    std::vector<OutboxCommand> out;
    while (st.executeStep()) {
      OutboxCommand c;
      c.id = st.getColumn(0).getInt64();
      c.kind = CommandKind::kAddRun;
      c.target = st.getColumn(1).getInt64();
      c.body = nlohmann::json::parse(st.getColumn(2).getString(), nullptr, false);
      c.created_at = st.getColumn(3).getInt64();
      if (c.body.is_object()) out.push_back(std::move(c));
    }
    return out;
  } catch (const std::exception& e) {
    return Status::error(std::string("reading the outbox: ") + e.what());
  }
}

StatusOr<std::optional<std::int64_t>> Store::find_added_run(std::int64_t project_id,
                                                            const std::string& name,
                                                            std::int64_t since) {
  try {
    SQLite::Statement st(
        *impl_->db,
        "SELECT run_id FROM runs WHERE project_id = ? AND name = ? AND created_on >= ? "
        "AND run_id NOT IN (SELECT json_extract(result, '$.id') FROM outbox "
        "WHERE command = 'add_run' AND state = 'done' AND result IS NOT NULL) "
        "ORDER BY created_on, run_id LIMIT 1");
    st.bind(1, project_id);
    st.bind(2, name);
    st.bind(3, since);
    if (!st.executeStep()) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{st.getColumn(0).getInt64()};
  } catch (const std::exception& e) {
    return Status::error(std::string("looking for an added run: ") + e.what());
  }
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
