#include "storage/run_repository.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <deque>
#include <unordered_map>

#include "storage/raw_statement.h"

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

// Stored rows read per query by apply_all: a page of get_runs.
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

// New runs a batch of observations writes per INSERT (see Impl::Pending).
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

// The runs the writer wrote last, as stored, so that the next event of a
// run in flight skips the SELECT. Valid while no other connection writes
// and nothing is rolled back (see forget_cached_rows). Bounded; the oldest
// entries go first.
class RowCache {
 public:
  static constexpr std::size_t kCapacity = 12'000;  // rows

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

}  // namespace

struct RunRepository::Impl {
  SQLite::Database& db;
  const Clock& clock;
  RawStatement insert_change, select_run, select_runs, max_change_seq;
  RowCache cache;
  // UPDATE statements by the set of columns they write, prepared on first
  // use: a write touches only what changed, so SQLite checks only the
  // constraints and rewrites only the index entries of those columns.
  std::unordered_map<ColumnMask, RawStatement> update_run;
  // The new runs of a batch of observations, written together by
  // flush_pending() in one INSERT of many rows per table, so SQLite sets a
  // statement up once per batch instead of once per run.
  struct Pending {
    RunRecord row;
    std::string changes;  // the change-log JSON; empty: no change row
    Source source = Source::kPoll;
    std::int64_t changed_at = 0;
  };
  std::vector<Pending> pending;
  // INSERTs of n rows (index n), prepared on first use; a single new run
  // (store()) uses insert_runs_n[1], prepared with the rest.
  std::vector<RawStatement> insert_runs_n, insert_changes_n;

  Impl(SQLite::Database& d, const Clock& c)
      : db(d),
        clock(c),
        insert_change(
            prepare_raw(db,
                        "INSERT INTO run_changes (seq, run_id, changed_at, source, changes) "
                        "VALUES (max(coalesce((SELECT max(seq) FROM run_changes), 0) + 1, "
                        "?5), ?1, ?2, ?3, ?4)")),
        select_run(prepare_raw(db, "SELECT " + run_columns() + " FROM runs WHERE run_id = ?")),
        select_runs(prepare_raw(db, select_runs_sql())),
        max_change_seq(prepare_raw(db, "SELECT max(seq) FROM run_changes")),
        insert_runs_n(kInsertChunk + 1),
        insert_changes_n(kInsertChunk + 1) {
    insert_runs_n[1] = prepare_raw(db, insert_run_sql(1));
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

  // Writes what `d` (decided on `current`) says, if anything. `keep`, when
  // set (it may be `current` itself), receives the row now stored, for a
  // later observation of the same run. With `batch`, a new run that is not
  // kept waits in `pending` for flush_pending(), and any other write
  // flushes it first, so the change log keeps the order of the
  // observations.
  StatusOr<ApplyResult> write_decision(const std::optional<RunRecord>& current, Decision& d,
                                       Source source, std::int64_t now,
                                       std::optional<RunRecord>* keep, bool batch) {
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
    if (Status s = store(current, d.next, d, source, now); !s.is_ok()) return s;
    // The cache is for webhook traffic, which comes back to the same runs
    // within seconds; a poll or a command only keeps it true, since copying
    // every row of a first sync in and evicting it again is wasted work.
    if (source != Source::kWebhook) {
      cache.refresh(d.next);
      if (keep) *keep = std::move(d.next);
    } else if (keep) {
      cache.put(RunRecord(d.next));
      *keep = std::move(d.next);
    } else {
      cache.put(std::move(d.next));
    }
    return result;
  }

  // Inserts the pending new runs and their change-log rows, kInsertChunk
  // rows per statement, with change_seq numbers following the largest in
  // the log (and the clock), in the order the runs were observed (as a row
  // each would get).
  Status flush_pending() {
    if (pending.empty()) return Status::ok();
    try {
      sqlite3_stmt* max_seq = max_change_seq.get();
      sqlite3_reset(max_seq);
      std::int64_t seq = step_raw(max_seq) ? sqlite3_column_int64(max_seq, 0) : 0;
      sqlite3_reset(max_seq);
      seq = std::max(seq, lowest_number_at(clock.unix_ms()) - 1);
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
          if (!stmt) stmt = prepare_raw(db, sql(n));
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

  // Stores `r` with its change-log row: an INSERT of every column when
  // there is no row yet (`before` is nullopt), else an UPDATE of the
  // columns that differ.
  Status store(const std::optional<RunRecord>& before, RunRecord& r, const Decision& d,
               Source source, std::int64_t now) {
    try {
      if (!d.changes.empty()) {
        sqlite3_stmt* st = insert_change.get();
        sqlite3_bind_int64(st, 1, r.run_id);
        sqlite3_bind_int64(st, 2, now);
        bind_text(st, 3, source_name(source));
        const std::string changes = changes_to_json(d.changes, d.next);
        bind_text(st, 4, changes);
        sqlite3_bind_int64(st, 5, lowest_number_at(clock.unix_ms()));
        exec_raw(st);
        r.change_seq = sqlite3_last_insert_rowid(db.getHandle());
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
        it = update_run.emplace(mask, prepare_raw(db, update_run_sql(mask))).first;
      }
      sqlite3_stmt* st = it->second.get();
      int index = 1;
      for (int c = 1; c < kRunColumnCount; ++c) {
        if (mask & (ColumnMask{1} << c)) bind_run_column(st, index++, r, c);
      }
      sqlite3_bind_int64(st, index, r.run_id);
      exec_raw(st);
      if (sqlite3_changes(db.getHandle()) != 1) {
        return Status::error("writing run " + std::to_string(r.run_id) + ": the row is gone");
      }
      return Status::ok();
    } catch (const std::exception& e) {
      return Status::error(std::string("writing run: ") + e.what());
    }
  }
};

RunRepository::RunRepository(SQLite::Database& db, const Clock& clock)
    : impl_(std::make_unique<Impl>(db, clock)) {}
RunRepository::~RunRepository() = default;

void RunRepository::forget_cached_rows() { impl_->cache.clear(); }

StatusOr<std::optional<RunRecord>> RunRepository::load(std::int64_t run_id) {
  return impl_->load(run_id);
}

StatusOr<ApplyResult> RunRepository::apply(const Observation& obs, std::int64_t now) {
  auto current = impl_->load(obs.run_id);
  if (!current) return current.status();
  Decision d = Reconciler::apply(current.value(), obs, now);
  return impl_->write_decision(current.value(), d, obs.source, now, /*keep=*/nullptr,
                               /*batch=*/false);
}

StatusOr<ApplyResult> RunRepository::write(const std::optional<RunRecord>& current,
                                           Decision& decision, Source source, std::int64_t now) {
  return impl_->write_decision(current, decision, source, now, /*keep=*/nullptr,
                               /*batch=*/false);
}

StatusOr<std::vector<ApplyResult>> RunRepository::apply_all(
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
    std::optional<RunRecord>& row = rows[slot[i]];
    const Observation& obs = observations[i];
    Decision d = Reconciler::apply(row, obs, now);
    const bool keep = --uses[slot[i]] > 0;
    auto r = impl_->write_decision(row, d, obs.source, now, keep ? &row : nullptr,
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

StatusOr<std::vector<KnownRun>> RunRepository::known_runs(std::int64_t project_id,
                                                          const std::string& project_code,
                                                          bool with_polled) {
  try {
    // Two queries rather than an OR, which SQLite answers by looking every
    // row up in the table: the first is covered by runs_by_project_state
    // when it does not ask for last_polled_at.
    RawStatement st = prepare_raw(
        impl_->db, std::string("SELECT run_id, state, ") +
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

}  // namespace runsync
