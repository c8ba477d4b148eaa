#include "storage/webhook_journal.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include "storage/run_repository.h"

namespace runsync {

const char* webhook_result_name(WebhookResult r) {
  switch (r) {
    case WebhookResult::kApplied: return "applied";
    case WebhookResult::kDuplicate: return "duplicate";
    case WebhookResult::kStale: return "stale";
    case WebhookResult::kIgnored: return "ignored";
  }
  return "?";
}

WebhookJournal::WebhookJournal(SQLite::Database& db, RunRepository& runs, const Clock& clock)
    : db_(db),
      runs_(runs),
      clock_(clock),
      // A delivery key seen before inserts nothing: the duplicate check and
      // the journal row are one statement.
      insert_(prepare_raw(db,
                          "INSERT INTO webhook_events (seq, received_at, delivery_key, "
                          "event_name, project_code, run_id, event_ts, body, result) "
                          "VALUES (max(coalesce((SELECT max(seq) FROM webhook_events), 0) + 1, "
                          "?9), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                          "ON CONFLICT (event_ts, delivery_key) DO NOTHING")) {}

StatusOr<WebhookResult> WebhookJournal::apply(const WebhookDelivery& delivery) {
  const WebhookEvent& ev = delivery.event;
  // Decide first (pure), then journal: the journal row carries the result,
  // and its INSERT is also the duplicate check. Nothing else is written for
  // a duplicate.
  std::optional<RunRecord> current;
  if (ev.known) {
    auto loaded = runs_.load(ev.observation.run_id);
    if (!loaded) return loaded.status();
    current = std::move(loaded).value();
  }
  // Rule 2 may move the observation's time; it is copied only then.
  const Observation* observation = &ev.observation;
  std::optional<Observation> clamped;
  const std::int64_t observed_at =
      observation_time(observation->observed_at, delivery.received_at);
  if (ev.known && observed_at != observation->observed_at) {
    clamped = *observation;
    clamped->observed_at = observed_at;
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
  sqlite3_stmt* st = insert_.get();
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
    sqlite3_bind_int64(st, 9, lowest_number_at(clock_.unix_ms()));
    exec_raw(st);
  } catch (const std::exception& e) {
    return Status::error(std::string("journaling delivery: ") + e.what());
  }
  if (sqlite3_changes(db_.getHandle()) == 0) return WebhookResult::kDuplicate;
  if (ev.known) {
    auto written = runs_.write(current, decision, observation->source, delivery.received_at);
    if (!written) return written.status();
  }
  return result;
}

}  // namespace runsync
