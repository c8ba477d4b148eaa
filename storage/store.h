// The mirror's write side: every SQL statement that changes the database.
// A Store owns the single writer connection.
//
// Thread safety: none. One thread (the Writer's) uses a Store at a time.
// Errors: SQLite exceptions never escape; each call returns a Status the
// caller must look at. A failed call inside a transaction leaves the
// transaction open for the caller to roll back (to its savepoint).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/outbox_command.h"
#include "core/poll_plan.h"
#include "core/reconciler.h"
#include "core/status.h"
#include "core/webhook_event.h"
#include "storage/database.h"

namespace runsync {

enum class WebhookResult { kApplied, kDuplicate, kStale, kIgnored };
const char* webhook_result_name(WebhookResult r);

struct WebhookDelivery {
  std::string delivery_key;  // "id:<webhook-id>" or "sha256:<hex SHA-256 of the body bytes>"
  std::int64_t received_at = 0;
  WebhookEvent event;
  std::string body;  // raw bytes as received
};

// The counters of one poll cycle (a row of poll_cycles).
struct PollCycleStats {
  std::int64_t pages = 0;
  std::int64_t requests = 0;
  std::int64_t runs_seen = 0;
  std::int64_t runs_changed = 0;
  std::int64_t runs_deleted = 0;
};

// What applying one observation did.
struct ApplyResult {
  Decision::Outcome outcome = Decision::Outcome::kStale;
  bool created = false;
  bool changed = false;  // a run_changes row was written
  bool written = false;  // the runs row was written
};

// Makes a database's -wal file durable: every transaction committed before
// sync() was called. Thread-safe: Store's has its own file descriptor, so
// it may run on one thread while the Store commits on another.
class WalSync {
 public:
  virtual ~WalSync() = default;
  virtual Status sync() = 0;
};

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

  // Journals a webhook delivery and applies its event, unless the delivery
  // key was seen before (kDuplicate: nothing is written). Unknown events are
  // journaled as kIgnored. Must run inside a transaction.
  StatusOr<WebhookResult> apply_webhook(const WebhookDelivery& delivery);

  // Applies one observation through the Reconciler and writes what it
  // decides (row, change log). Must run inside a transaction.
  StatusOr<ApplyResult> apply_observation(const Observation& obs, std::int64_t now);

  // apply_observation for each of `observations`, in order, with the same
  // outcome (an observation sees what the ones before it wrote, also for the
  // same run), but the stored rows are read a few hundred per query. Returns
  // one ApplyResult per observation, in order. On error nothing is rolled
  // back here: the caller rolls back (to its savepoint) what the batch wrote.
  // Must run inside a transaction.
  StatusOr<std::vector<ApplyResult>> apply_observations(std::span<const Observation> observations,
                                                        std::int64_t now);

  // The stored row, or nullopt.
  StatusOr<std::optional<RunRecord>> load_run(std::int64_t run_id);

  // The non-deleted and deleted runs of a project: those with this
  // project_id, and those only known by a webhook's project_code. Their
  // `polled` only `with_polled` (an active cycle needs it, a full one does
  // not): without it the runs with this project_id come from the
  // (project_id, state) index alone, not from a read of every row.
  StatusOr<std::vector<KnownRun>> known_runs(std::int64_t project_id,
                                             const std::string& project_code, bool with_polled);

  // Starts a poll_cycles row; returns its id.
  StatusOr<std::int64_t> begin_poll_cycle(std::int64_t project_id, PollKind kind,
                                          std::int64_t started_at);
  // Completes it; `error` nullopt when the cycle succeeded.
  Status finish_poll_cycle(std::int64_t id, const PollCycleStats& stats,
                           const std::optional<std::string>& error, std::int64_t finished_at);

  // --- outbox (write-back commands) ---
  // Queues a validated command; returns its id.
  StatusOr<std::int64_t> queue_command(const OutboxCommand& command, std::int64_t now);
  // The oldest pending command, or nullopt. A row whose command or body
  // cannot be understood is marked failed on the way and skipped.
  StatusOr<std::optional<OutboxCommand>> next_pending_command(std::int64_t now);
  // Moves a command to `state` ("sending", "pending", "done", "failed",
  // "unknown"); `count_attempt` adds one to attempts. A null `error` or
  // `result` clears the column.
  Status update_command(std::int64_t id, std::string_view state, bool count_attempt,
                        const std::optional<std::string>& error,
                        const std::optional<std::string>& result, std::int64_t now);
  // Commands left "sending" by a daemon that stopped mid-request become
  // "unknown": they are never sent again blindly. Returns how many.
  StatusOr<int> recover_sending_commands(std::int64_t now);
  // add_run commands whose outcome is unknown.
  StatusOr<std::vector<OutboxCommand>> unknown_add_runs();
  // A run of `project_id` named `name`, created at or after `since`, that no
  // done add_run command already claims; the earliest such run, or nullopt.
  StatusOr<std::optional<std::int64_t>> find_added_run(std::int64_t project_id,
                                                       const std::string& name,
                                                       std::int64_t since);

  // Writes one page (the database header, its user_version unchanged), so
  // that committing the transaction needs room in the WAL and a sync like
  // any other write: /readyz's probe that the database takes writes. Must
  // run inside a transaction.
  Status probe_write();

  // Checkpoints the WAL (PASSIVE: never waits for readers).
  Status checkpoint();

  // The underlying connection, for read queries on the writer thread.
  SQLite::Database& db();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace runsync
