#include "core/webhook_event.h"

#include <nlohmann/json.hpp>

namespace runsync {
namespace {

using nlohmann::json;

Status type_error(const std::string& path, const char* want) {
  return Status::error(path + " must be " + want);
}

// Reads an optional integer field; absent → nullopt, null → null Value.
StatusOr<std::optional<Value>> opt_int(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::optional<Value>{};
  if (it->is_null()) return std::optional<Value>{Value{}};
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > INT64_MAX) {
      return type_error(path + key, "an integer within 64 bits");
    }
    return std::optional<Value>{Value{it->get<std::int64_t>()}};
  }
  return type_error(path + key, "an integer or null");
}

StatusOr<std::optional<Value>> opt_text(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::optional<Value>{};
  if (it->is_null()) return std::optional<Value>{Value{}};
  if (it->is_string()) return std::optional<Value>{Value{it->get<std::string>()}};
  return type_error(path + key, "a string or null");
}

// Copies payload[key] (integer) into the observation's field, if present.
Status take_int(const json& payload, const char* key, Field f, Observation& obs) {
  auto v = opt_int(payload, key, "payload.");
  if (!v) return v.status();
  if (v.value()) obs.set(f, *v.value());
  return Status::ok();
}

Status take_text(const json& payload, const char* key, Field f, Observation& obs) {
  auto v = opt_text(payload, key, "payload.");
  if (!v) return v.status();
  if (v.value()) obs.set(f, *v.value());
  return Status::ok();
}

#define RUNSYNC_TRY(expr)              \
  do {                                 \
    Status s_ = (expr);                \
    if (!s_.is_ok()) return s_;        \
  } while (0)

Status parse_started(const json& p, Observation& obs) {
  RUNSYNC_TRY(take_text(p, "title", Field::kName, obs));
  RUNSYNC_TRY(take_text(p, "description", Field::kDescription, obs));
  RUNSYNC_TRY(take_int(p, "cases_count", Field::kCasesCount, obs));
  RUNSYNC_TRY(take_text(p, "environment", Field::kEnvironment, obs));
  if (auto it = p.find("plan"); it != p.end()) {
    if (it->is_null()) {
      obs.set(Field::kPlanId, Value{});
      obs.set(Field::kPlanName, Value{});
    } else if (it->is_object()) {
      RUNSYNC_TRY(take_int(*it, "id", Field::kPlanId, obs).is_ok()
                      ? Status::ok()
                      : Status::error("payload.plan.id must be an integer or null"));
      RUNSYNC_TRY(take_text(*it, "title", Field::kPlanName, obs).is_ok()
                      ? Status::ok()
                      : Status::error("payload.plan.title must be a string or null"));
    } else {
      return type_error("payload.plan", "an object or null");
    }
  }
  obs.state = StateClaim::kActive;
  return Status::ok();
}

// run.completed and run.aborted carry the same counters; senders spell
// "skipped" both ways.
Status parse_ended(const json& p, Observation& obs, std::int64_t ts, StateClaim claim) {
  RUNSYNC_TRY(take_int(p, "cases", Field::kCasesCount, obs));
  RUNSYNC_TRY(take_int(p, "passed", Field::kPassedCount, obs));
  RUNSYNC_TRY(take_int(p, "failed", Field::kFailedCount, obs));
  RUNSYNC_TRY(take_int(p, "blocked", Field::kBlockedCount, obs));
  RUNSYNC_TRY(take_int(p, "untested", Field::kUntestedCount, obs));
  RUNSYNC_TRY(take_int(p, "retest", Field::kRetestCount, obs));
  RUNSYNC_TRY(take_int(p, "skiped", Field::kSkippedCount, obs));
  RUNSYNC_TRY(take_int(p, "skipped", Field::kSkippedCount, obs));
  RUNSYNC_TRY(take_int(p, "duration", Field::kDurationMs, obs));
  obs.set(Field::kCompletedOn, Value{ts});
  obs.state = claim;
  return Status::ok();
}

Status parse_updated(const json& p, Observation& obs) {
  RUNSYNC_TRY(take_int(p, "cases_count", Field::kCasesCount, obs));
  if (!obs.get(Field::kCasesCount)) {
    auto added = opt_int(p, "cases_added", "payload.");
    if (!added) return added.status();
    if (added.value()) {
      if (const auto* n = std::get_if<std::int64_t>(&*added.value())) obs.cases_added = *n;
    }
  }
  return Status::ok();
}

Status parse_report_changed(const json& p, Observation& obs) {
  auto it = p.find("visible");
  if (it == p.end()) return Status::error("payload.visible is missing");
  if (it->is_boolean()) {
    obs.set(Field::kReportVisible, Value{std::int64_t{it->get<bool>() ? 1 : 0}});
  } else if (it->is_number_integer() && (it->get<std::int64_t>() == 0 || it->get<std::int64_t>() == 1)) {
    obs.set(Field::kReportVisible, Value{it->get<std::int64_t>()});
  } else {
    return type_error("payload.visible", "a boolean");
  }
  return Status::ok();
}

}  // namespace

bool json_depth_within(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '{':
      case '[':
        if (++depth > max_depth) return false;
        break;
      case '}':
      case ']': --depth; break;
      default: break;
    }
  }
  return true;
}

StatusOr<WebhookEvent> parse_webhook_event(std::string_view body) {
  if (!json_depth_within(body, kMaxJsonDepth)) {
    return Status::error("body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::error("body is not valid JSON");
  if (!doc.is_object()) return Status::error("body must be a JSON object");

  WebhookEvent ev;
  auto name = doc.find("event_name");
  if (name == doc.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return Status::error("event_name must be a non-empty string");
  }
  ev.event_name = name->get<std::string>();

  auto ts = doc.find("timestamp");
  if (ts == doc.end() || !ts->is_number_integer()) {
    return Status::error("timestamp must be an integer (unix seconds)");
  }
  if (ts->is_number_unsigned() ? ts->get<std::uint64_t>() > INT64_MAX : ts->get<std::int64_t>() < 0) {
    return Status::error("timestamp must be a non-negative integer (unix seconds)");
  }
  ev.timestamp = ts->get<std::int64_t>();

  auto code = doc.find("project_code");
  if (code == doc.end() || !code->is_string()) {
    return Status::error("project_code must be a string");
  }
  ev.project_code = code->get<std::string>();

  if (auto tm = doc.find("team_member_id"); tm != doc.end() && !tm->is_null()) {
    if (!tm->is_number_integer()) return type_error("team_member_id", "an integer or null");
    ev.team_member_id = tm->get<std::int64_t>();
  }

  auto payload_it = doc.find("payload");
  if (payload_it == doc.end() || !payload_it->is_object()) {
    return Status::error("payload must be an object");
  }
  const json& payload = *payload_it;

  static constexpr std::string_view kKnown[] = {"run.started",   "run.updated", "run.completed",
                                                "run.aborted",   "run.deleted", "run.report_changed"};
  for (auto k : kKnown) ev.known = ev.known || ev.event_name == k;

  auto id = payload.find("id");
  const bool id_ok = id != payload.end() && id->is_number_integer() && !id->is_number_unsigned()
                         ? id->get<std::int64_t>() > 0
                         : (id != payload.end() && id->is_number_unsigned() &&
                            id->get<std::uint64_t>() > 0 && id->get<std::uint64_t>() <= INT64_MAX);
  if (id_ok) ev.run_id = id->get<std::int64_t>();
  if (!ev.known) return ev;  // journaled as ignored; its payload is not interpreted
  if (!id_ok) return Status::error("payload.id must be a positive integer");

  Observation& obs = ev.observation;
  obs.run_id = *ev.run_id;
  obs.source = Source::kWebhook;
  obs.observed_at = ev.timestamp;
  obs.set(Field::kProjectCode, Value{ev.project_code});

  Status s;
  if (ev.event_name == "run.started") {
    s = parse_started(payload, obs);
  } else if (ev.event_name == "run.updated") {
    s = parse_updated(payload, obs);
  } else if (ev.event_name == "run.completed") {
    s = parse_ended(payload, obs, ev.timestamp, StateClaim::kCompleted);
  } else if (ev.event_name == "run.aborted") {
    s = parse_ended(payload, obs, ev.timestamp, StateClaim::kAborted);
  } else if (ev.event_name == "run.deleted") {
    obs.state = StateClaim::kDeleted;
  } else {
    s = parse_report_changed(payload, obs);
  }
  if (!s.is_ok()) return s;
  return ev;
}

}  // namespace runsync
