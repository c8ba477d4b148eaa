// The `webhook_events` table: the journal of every accepted delivery, and
// the one place a delivery is applied to the mirror.
//
// Ownership: made by Store for its connection; does not own it, and writes
// runs through the Store's RunRepository.
// Thread safety: none; the Store's one user (the writer thread).
// Errors: SQLite exceptions never escape; apply() returns a Status. A
// failed call leaves the transaction open for the caller to roll back (to
// its savepoint). Must run inside the Store's transaction.
#pragma once

#include <cstdint>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "core/webhook_event.h"
#include "storage/change_numbers.h"
#include "storage/raw_statement.h"

namespace SQLite {
class Database;
}

namespace runsync {

class RunRepository;

enum class WebhookResult { kApplied, kDuplicate, kStale, kIgnored };
const char* webhook_result_name(WebhookResult r);  // "applied", "duplicate", ...

struct WebhookDelivery {
  std::string delivery_key;  // "id:<webhook-id>" or "sha256:<hex SHA-256 of the body bytes>"
  std::int64_t received_at = 0;
  WebhookEvent event;
  std::string body;  // raw bytes as received
};

class WebhookJournal {
 public:
  // Prepares its statement; throws SQLite::Exception when it cannot
  // (Store::open turns that into its error). Journal numbers (`seq`)
  // follow `clock`'s wall time (change_numbers.h); `clock` must outlive it.
  WebhookJournal(SQLite::Database& db, RunRepository& runs, const Clock& clock);
  WebhookJournal(const WebhookJournal&) = delete;
  WebhookJournal& operator=(const WebhookJournal&) = delete;

  // Journals a delivery and applies its event, unless the delivery key was
  // seen before (kDuplicate: nothing is written). An event other than the
  // six run.* events (WebhookEvent::known is false) is journaled as
  // kIgnored; one the mirror already knows better as kStale.
  StatusOr<WebhookResult> apply(const WebhookDelivery& delivery);

 private:
  SQLite::Database& db_;
  RunRepository& runs_;
  const Clock& clock_;
  RawStatement insert_;
};

}  // namespace runsync
