// The mirror's write side: the single writer connection, its transactions,
// and the repositories that hold every SQL statement that changes the
// database, one per concern:
//   runs()         the runs and their change log  (run_repository.h)
//   journal()      accepted webhook deliveries    (webhook_journal.h)
//   poll_cycles()  one row per poll cycle         (poll_cycle_log.h)
//   outbox()       write-back commands            (outbox.h)
//   hints()        refreshes TestRail hints asked for (hint_queue.h)
// The repositories write inside the transaction the Store's user opened;
// one transaction may span all of them.
//
// Thread safety: none. One thread (the Writer's) uses a Store, and its
// repositories, at a time.
// Errors: SQLite exceptions never escape; each call returns a Status the
// caller must look at. A failed call inside a transaction leaves the
// transaction open for the caller to roll back (to its savepoint).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/status.h"
#include "storage/database.h"
#include "storage/hint_queue.h"
#include "storage/outbox.h"
#include "storage/poll_cycle_log.h"
#include "storage/run_repository.h"
#include "storage/wal_sync.h"
#include "storage/webhook_journal.h"

namespace runsync {

class Store {
 public:
  // Opens (creating and migrating) the database at `path`.
  static StatusOr<std::unique_ptr<Store>> open(const std::string& path, const OpenOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Transactions. begin() takes the write lock (BEGIN IMMEDIATE).
  Status begin();
  Status commit();
  // Splits durability from commit(), for a writer that overlaps the two:
  // afterwards commit() publishes a transaction without waiting for the
  // disk, and it is durable, with every one before it, once the returned
  // WalSync's sync() has returned. Only for a Store opened with
  // Durability::kFull and auto_checkpoint = false (a Checkpointer beside
  // it): a checkpoint on this connection would then skip syncs it needs.
  StatusOr<std::unique_ptr<WalSync>> split_commit_sync();
  void rollback();  // never fails; safe when no transaction is open
  // Savepoints, one level deep, so one bad job does not spoil a batch.
  Status savepoint();
  Status release();
  void rollback_to_savepoint();

  // Writes one page (the database header, its user_version unchanged), so
  // that committing the transaction needs room in the WAL and a sync like
  // any other write: /readyz's probe that the database takes writes. Must
  // run inside a transaction.
  Status probe_write();

  // The frames in the WAL after this connection's latest commit, kept up
  // to date from this call on (a WAL restarted by anyone starts the count
  // over). Only for a Store opened with auto_checkpoint = false: the count
  // takes the place of SQLite's automatic checkpoints. Readable from any
  // thread.
  std::shared_ptr<const std::atomic<int>> wal_frames();

  // The clock it was opened with (OpenOptions::clock).
  const Clock& clock() const;

  RunRepository& runs();
  WebhookJournal& journal();
  PollCycleLog& poll_cycles();
  Outbox& outbox();
  HintQueue& hints();

  // The underlying connection, for read queries on the writer thread.
  SQLite::Database& db();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace runsync
