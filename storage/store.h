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
#include <string>

#include "core/reconciler.h"
#include "core/status.h"
#include "core/webhook_event.h"
#include "storage/database.h"

namespace runsync {

enum class WebhookResult { kApplied, kDuplicate, kStale, kIgnored };
const char* webhook_result_name(WebhookResult r);

struct WebhookDelivery {
  std::string delivery_key;  // "id:<webhook-id>" or "sha256:<hex of canonical body>"
  std::int64_t received_at = 0;
  WebhookEvent event;
  std::string body;  // raw bytes as received
};

// What applying one observation did.
struct ApplyResult {
  Decision::Outcome outcome = Decision::Outcome::kStale;
  bool created = false;
  bool changed = false;  // a run_changes row was written
  bool written = false;  // the runs row was written
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

  // The stored row, or nullopt.
  StatusOr<std::optional<RunRecord>> load_run(std::int64_t run_id);

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
