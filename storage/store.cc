#include "storage/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include "storage/wal_write_vfs.h"

namespace runsync {

struct Store::Impl {
  std::unique_ptr<SQLite::Database> db;
  const Clock& clock;
  SQLite::Statement begin, commit, rollback, savepoint, release, rollback_to, data_version;
  RunRepository runs;
  WebhookJournal journal;
  PollCycleLog poll_cycles;
  Outbox outbox;
  HintQueue hints;
  std::int64_t last_data_version = -1;
  std::shared_ptr<std::atomic<int>> wal_frames;  // set by Store::wal_frames()
  bool may_split_sync = false;  // opened with Durability::kFull and no auto checkpoint
  bool split_sync = false;      // commit() leaves the WAL sync to a WalSync

  Impl(std::unique_ptr<SQLite::Database> d, const Clock& c)
      : db(std::move(d)),
        clock(c),
        begin(*db, "BEGIN IMMEDIATE"),
        commit(*db, "COMMIT"),
        rollback(*db, "ROLLBACK"),
        savepoint(*db, "SAVEPOINT job"),
        release(*db, "RELEASE job"),
        rollback_to(*db, "ROLLBACK TO job"),
        data_version(*db, "PRAGMA data_version"),
        runs(*db, clock),
        journal(*db, runs, clock),
        poll_cycles(*db),
        outbox(*db),
        hints(*db) {}

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

  // PRAGMA data_version: changes when another connection commits. -2 when
  // it cannot be read, which the caller takes for a change.
  std::int64_t read_data_version() {
    try {
      data_version.reset();
      const std::int64_t v = data_version.executeStep() ? data_version.getColumn(0).getInt64() : -2;
      data_version.reset();
      return v;
    } catch (const std::exception&) {
      return -2;  // the next call resets the statement
    }
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::open(const std::string& path, const OpenOptions& options) {
  auto db = open_database(path, options);
  if (!db) return db.status();
  try {
    auto impl = std::make_unique<Impl>(std::move(db).value(), *options.clock);
    impl->may_split_sync = options.durability == Durability::kFull && !options.auto_checkpoint &&
                           !options.read_only;
    return std::unique_ptr<Store>(new Store(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::error(std::string("preparing statements: ") + e.what());
  }
}

std::shared_ptr<const std::atomic<int>> Store::wal_frames() {
  if (!impl_->wal_frames) {
    impl_->wal_frames = std::make_shared<std::atomic<int>>(0);
    sqlite3_wal_hook(
        impl_->db->getHandle(),
        [](void* counter, sqlite3*, const char*, int frames) {
          static_cast<std::atomic<int>*>(counter)->store(frames, std::memory_order_relaxed);
          return SQLITE_OK;
        },
        impl_->wal_frames.get());
  }
  return impl_->wal_frames;
}

SQLite::Database& Store::db() { return *impl_->db; }
const Clock& Store::clock() const { return impl_->clock; }
RunRepository& Store::runs() { return impl_->runs; }
WebhookJournal& Store::journal() { return impl_->journal; }
HintQueue& Store::hints() { return impl_->hints; }
PollCycleLog& Store::poll_cycles() { return impl_->poll_cycles; }
Outbox& Store::outbox() { return impl_->outbox; }

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
  // Another connection committed since our last transaction: the rows the
  // runs repository remembers may be stale.
  const std::int64_t version = impl_->read_data_version();
  if (version != impl_->last_data_version) impl_->runs.forget_cached_rows();
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
  auto wal_sync = open_wal_sync(impl_->db->getHandle());
  if (wal_sync) impl_->split_sync = true;
  return wal_sync;
}

void Store::rollback() {
  impl_->runs.forget_cached_rows();
  // With no transaction open, ROLLBACK fails, which changes nothing.
  (void)Impl::run(impl_->rollback, "ROLLBACK");
}
Status Store::savepoint() { return Impl::run(impl_->savepoint, "SAVEPOINT"); }
Status Store::release() { return Impl::run(impl_->release, "RELEASE"); }
void Store::rollback_to_savepoint() {
  impl_->runs.forget_cached_rows();
  (void)Impl::run(impl_->rollback_to, "ROLLBACK TO");
  (void)Impl::run(impl_->release, "RELEASE");
}

}  // namespace runsync
