// Parsing of webhook deliveries (reference/webhook-run-events.md) into
// observations. Pure; tolerant of what real senders send, strict about
// shape: anything that is not a well-formed event is an error naming the
// problem, and nothing is applied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/run.h"
#include "core/status.h"

namespace runsync {

// The six run events (reference/webhook-run-events.md), then every other
// name. The one list of event names.
enum class EventKind { kStarted, kUpdated, kCompleted, kAborted, kDeleted, kReportChanged, kOther };
inline constexpr std::size_t kEventKindCount = 7;
EventKind event_kind(std::string_view name);
// "run.started" … "run.report_changed"; "other" for kOther.
const char* event_kind_name(EventKind kind);

// Bodies nested deeper than this are refused before parsing.
inline constexpr int kMaxJsonDepth = 32;

struct WebhookEvent {
  std::string event_name;
  std::int64_t timestamp = 0;  // unix seconds, when the event happened
  std::string project_code;
  std::optional<std::int64_t> team_member_id;
  std::optional<std::int64_t> run_id;  // payload.id; always set for known events
  bool known = false;                  // one of the six run.* events
  Observation observation;             // meaningful only when `known`
};

// Parses one delivery. On error the message says what is wrong, e.g.
// "payload.id must be an integer".
StatusOr<WebhookEvent> parse_webhook_event(std::string_view body);

// True when `body` nests arrays/objects no deeper than `max_depth`.
bool json_depth_within(std::string_view body, int max_depth);

}  // namespace runsync
