#include "core/webhook_event.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "core/key_table.h"

// Parsing runs on simdjson's DOM, once per delivery on the I/O thread. What
// counts as JSON is what simdjson accepts (RFC 8259: numbers must fit in 64
// bits), plus a leading UTF-8 byte order mark, which RFC 8259 §8.1 lets a
// parser ignore and some senders write. The last of duplicate keys wins.

namespace runsync {
namespace {

namespace dom = simdjson::dom;
using simdjson::SUCCESS;
using Type = dom::element_type;

// Parser buffers kept between deliveries at most; a larger body (up to the
// listener's max_body_bytes) is parsed, then its buffers are released.
constexpr std::size_t kInitialCapacity = 4096;
constexpr std::size_t kRetainedCapacity = 64u << 10;

using Slot = std::optional<dom::element>;

// Scans JSON text a character at a time: inside(c) is true for the
// characters of a string, its quotes included.
class JsonStrings {
 public:
  bool inside(char c) {
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      return true;
    }
    in_string_ = c == '"';
    return in_string_;
  }

 private:
  bool in_string_ = false;
  bool escaped_ = false;
};

Status type_error(std::string_view path, std::string_view key, const char* want) {
  std::string message;
  message.reserve(path.size() + key.size() + 16);
  message.append(path).append(key).append(" must be ").append(want);
  return Status::error(std::move(message));
}

// Accessors for an element whose type was checked.
std::int64_t as_int64(dom::element e) { return e.get_int64().value_unsafe(); }
dom::object as_object(dom::element e) { return e.get_object().value_unsafe(); }
std::string_view as_string(dom::element e) { return e.get_string().value_unsafe(); }

// Reads an optional integer field into `out`: absent → nullopt, null → a
// null Value. simdjson types an integer UINT64 only above INT64_MAX.
Status read_int(const Slot& v, std::string_view path, std::string_view key,
                std::optional<Value>& out) {
  if (!v) return Status::ok();
  switch (v->type()) {
    case Type::NULL_VALUE: out = Value{}; return Status::ok();
    case Type::INT64: out = Value{as_int64(*v)}; return Status::ok();
    case Type::UINT64: return type_error(path, key, "an integer within 64 bits");
    default: return type_error(path, key, "an integer or null");
  }
}

// A count: an integer >= 0, or null (SPEC §4). Every count a known event
// carries goes through here, whichever parse found the document.
Status read_count(const Slot& v, std::string_view path, std::string_view key,
                  std::optional<Value>& out) {
  if (Status s = read_int(v, path, key, out); !s.is_ok()) return s;
  if (out) {
    if (const auto* n = std::get_if<std::int64_t>(&*out); n && *n < 0) {
      out.reset();
      return type_error(path, key, "an integer >= 0 or null");
    }
  }
  return Status::ok();
}

using IntReader = Status (*)(const Slot&, std::string_view, std::string_view,
                             std::optional<Value>&);

// Copies an optional integer field, read by `read` (read_int or
// read_count), into the observation.
Status take_with(IntReader read, const Slot& v, std::string_view path, std::string_view key,
                 Field f, Observation& obs) {
  std::optional<Value> value;
  Status s = read(v, path, key, value);
  if (s.is_ok() && value) obs.set(f, std::move(*value));
  return s;
}
Status take_int(const Slot& v, std::string_view path, std::string_view key, Field f,
                Observation& obs) {
  return take_with(read_int, v, path, key, f, obs);
}

Status take_text(const Slot& v, std::string_view path, std::string_view key, Field f,
                 Observation& obs) {
  if (!v) return Status::ok();
  switch (v->type()) {
    case Type::NULL_VALUE: obs.set(f, Value{}); return Status::ok();
    case Type::STRING: obs.set(f, Value{std::string(as_string(*v))}); return Status::ok();
    default: return type_error(path, key, "a string or null");
  }
}

#define RUNSYNC_TRY(expr)              \
  do {                                 \
    Status s_ = (expr);                \
    if (!s_.is_ok()) return s_;        \
  } while (0)

// The payload keys any known event reads; the last occurrence of each.
enum PayloadKey : int {
  kId,
  kTitle,
  kDescription,
  kCasesCount,
  kEnvironment,
  kPlan,
  kCases,
  kPassed,
  kFailed,
  kBlocked,
  kUntested,
  kRetest,
  kSkiped,
  kSkipped,
  kDuration,
  kCasesAdded,
  kVisible,
  kPayloadKeyCount
};
constexpr std::array<std::string_view, kPayloadKeyCount> kPayloadKeyNames = {
    "id",       "title",   "description", "cases_count", "environment", "plan",
    "cases",    "passed",  "failed",      "blocked",     "untested",    "retest",
    "skiped",   "skipped", "duration",    "cases_added", "visible"};

struct Payload {
  std::array<Slot, kPayloadKeyCount> slots{};
  const Slot& operator[](PayloadKey k) const { return slots[k]; }
};

constexpr KeyTable<PayloadKey, kPayloadKeyCount> kPayloadKeys = [] {
  std::array<KeyTable<PayloadKey, kPayloadKeyCount>::Entry, kPayloadKeyCount> keys{};
  for (int k = 0; k < kPayloadKeyCount; ++k) keys[k] = {kPayloadKeyNames[k], PayloadKey(k)};
  return KeyTable<PayloadKey, kPayloadKeyCount>(keys);
}();

void collect_payload(dom::object object, Payload& p) {
  for (const dom::key_value_pair field : object) {
    if (const PayloadKey* k = kPayloadKeys.find(field.key)) p.slots[*k] = field.value;
  }
}

constexpr std::string_view kP = "payload.";

Status take_count(const Payload& p, PayloadKey k, Field f, Observation& obs) {
  return take_with(read_count, p[k], kP, kPayloadKeyNames[k], f, obs);
}
Status take_text(const Payload& p, PayloadKey k, Field f, Observation& obs) {
  return take_text(p[k], kP, kPayloadKeyNames[k], f, obs);
}

Status parse_started(const Payload& p, Observation& obs) {
  RUNSYNC_TRY(take_text(p, kTitle, Field::kName, obs));
  RUNSYNC_TRY(take_text(p, kDescription, Field::kDescription, obs));
  RUNSYNC_TRY(take_count(p, kCasesCount, Field::kCasesCount, obs));
  RUNSYNC_TRY(take_text(p, kEnvironment, Field::kEnvironment, obs));
  if (const Slot& plan = p[kPlan]) {
    if (plan->is_null()) {
      obs.set(Field::kPlanId, Value{});
      obs.set(Field::kPlanName, Value{});
    } else if (plan->type() == Type::OBJECT) {
      Slot id, title;
      for (const dom::key_value_pair field : as_object(*plan)) {
        if (field.key == "id") {
          id = field.value;
        } else if (field.key == "title") {
          title = field.value;
        }
      }
      if (!take_int(id, kP, "plan.id", Field::kPlanId, obs).is_ok()) {
        return Status::error("payload.plan.id must be an integer or null");
      }
      if (!take_text(title, kP, "plan.title", Field::kPlanName, obs).is_ok()) {
        return Status::error("payload.plan.title must be a string or null");
      }
    } else {
      return type_error(kP, "plan", "an object or null");
    }
  }
  obs.state = StateClaim::kActive;
  return Status::ok();
}

// run.completed and run.aborted carry the same counters; senders spell
// "skipped" both ways.
Status parse_ended(const Payload& p, Observation& obs, std::int64_t ts, StateClaim claim) {
  RUNSYNC_TRY(take_count(p, kCases, Field::kCasesCount, obs));
  RUNSYNC_TRY(take_count(p, kPassed, Field::kPassedCount, obs));
  RUNSYNC_TRY(take_count(p, kFailed, Field::kFailedCount, obs));
  RUNSYNC_TRY(take_count(p, kBlocked, Field::kBlockedCount, obs));
  RUNSYNC_TRY(take_count(p, kUntested, Field::kUntestedCount, obs));
  RUNSYNC_TRY(take_count(p, kRetest, Field::kRetestCount, obs));
  RUNSYNC_TRY(take_count(p, kSkiped, Field::kSkippedCount, obs));
  RUNSYNC_TRY(take_count(p, kSkipped, Field::kSkippedCount, obs));
  RUNSYNC_TRY(take_count(p, kDuration, Field::kDurationMs, obs));
  obs.set(Field::kCompletedOn, Value{ts});
  obs.state = claim;
  return Status::ok();
}

Status parse_updated(const Payload& p, Observation& obs) {
  RUNSYNC_TRY(take_count(p, kCasesCount, Field::kCasesCount, obs));
  if (!obs.get(Field::kCasesCount)) {
    // cases_added: an integer or null; only an integer is kept.
    std::optional<Value> added;
    RUNSYNC_TRY(read_count(p[kCasesAdded], kP, kPayloadKeyNames[kCasesAdded], added));
    if (added) {
      if (const auto* n = std::get_if<std::int64_t>(&*added)) obs.cases_added = *n;
    }
  }
  return Status::ok();
}

Status parse_report_changed(const Payload& p, Observation& obs) {
  const Slot& v = p[kVisible];
  if (!v) return Status::error("payload.visible is missing");
  bool b = false;
  if (v->get_bool().get(b) == SUCCESS) {
    obs.set(Field::kReportVisible, Value{std::int64_t{b ? 1 : 0}});
  } else if (v->type() == Type::INT64 && (as_int64(*v) == 0 || as_int64(*v) == 1)) {
    obs.set(Field::kReportVisible, Value{as_int64(*v)});
  } else {
    return type_error(kP, "visible", "a boolean");
  }
  return Status::ok();
}

enum class Kind { kUnknown, kStarted, kUpdated, kCompleted, kAborted, kDeleted, kReportChanged };

Kind kind_of(std::string_view name) {
  if (name == "run.started") return Kind::kStarted;
  if (name == "run.updated") return Kind::kUpdated;
  if (name == "run.completed") return Kind::kCompleted;
  if (name == "run.aborted") return Kind::kAborted;
  if (name == "run.deleted") return Kind::kDeleted;
  if (name == "run.report_changed") return Kind::kReportChanged;
  return Kind::kUnknown;
}

// The event in a parsed document, into `ev` (which starts empty).
Status fill_event(dom::element root, WebhookEvent& ev) {
  dom::object doc;
  if (root.get_object().get(doc) != SUCCESS) return Status::error("body must be a JSON object");

  Slot name, ts, code, team_member, payload_value;
  for (const dom::key_value_pair field : doc) {
    const std::string_view key = field.key;
    if (key == "event_name") {
      name = field.value;
    } else if (key == "timestamp") {
      ts = field.value;
    } else if (key == "project_code") {
      code = field.value;
    } else if (key == "team_member_id") {
      team_member = field.value;
    } else if (key == "payload") {
      payload_value = field.value;
    }
  }

  if (!name || name->type() != Type::STRING || as_string(*name).empty()) {
    return Status::error("event_name must be a non-empty string");
  }
  ev.event_name = std::string(as_string(*name));

  if (!ts || (ts->type() != Type::INT64 && ts->type() != Type::UINT64)) {
    return Status::error("timestamp must be an integer (unix seconds)");
  }
  if (ts->type() == Type::UINT64 || as_int64(*ts) < 0) {
    return Status::error("timestamp must be a non-negative integer (unix seconds)");
  }
  ev.timestamp = as_int64(*ts);

  if (!code || code->type() != Type::STRING) return Status::error("project_code must be a string");
  ev.project_code = std::string(as_string(*code));

  if (team_member && !team_member->is_null()) {
    if (team_member->type() == Type::INT64) {
      ev.team_member_id = as_int64(*team_member);
    } else if (team_member->type() == Type::UINT64) {
      return type_error("", "team_member_id", "an integer within 64 bits or null");
    } else {
      return type_error("", "team_member_id", "an integer or null");
    }
  }

  if (!payload_value || payload_value->type() != Type::OBJECT) {
    return Status::error("payload must be an object");
  }
  const Kind kind = kind_of(ev.event_name);
  ev.known = kind != Kind::kUnknown;

  Payload p;
  if (ev.known) {
    collect_payload(as_object(*payload_value), p);
  } else {
    for (const dom::key_value_pair field : as_object(*payload_value)) {
      if (field.key == "id") p.slots[kId] = field.value;
    }
  }
  // UINT64 is above INT64_MAX: not a run id.
  const Slot& id = p[kId];
  const bool id_ok = id && id->type() == Type::INT64 && as_int64(*id) > 0;
  if (id_ok) ev.run_id = as_int64(*id);
  if (!ev.known) return Status::ok();  // journaled as ignored; its payload is not interpreted
  if (!id_ok) return Status::error("payload.id must be a positive integer");

  Observation& obs = ev.observation;
  obs.run_id = *ev.run_id;
  obs.source = Source::kWebhook;
  obs.observed_at = ev.timestamp;
  obs.set(Field::kProjectCode, Value{ev.project_code});

  Status s;
  switch (kind) {
    case Kind::kStarted: s = parse_started(p, obs); break;
    case Kind::kUpdated: s = parse_updated(p, obs); break;
    case Kind::kCompleted: s = parse_ended(p, obs, ev.timestamp, StateClaim::kCompleted); break;
    case Kind::kAborted: s = parse_ended(p, obs, ev.timestamp, StateClaim::kAborted); break;
    case Kind::kDeleted: obs.state = StateClaim::kDeleted; break;
    case Kind::kReportChanged: s = parse_report_changed(p, obs); break;
    case Kind::kUnknown: break;
  }
  return s;
}

// Filled in place: an Observation is costly to move.
StatusOr<WebhookEvent> event_from(dom::element root) {
  StatusOr<WebhookEvent> out{WebhookEvent{}};
  Status s = fill_event(root, *out);
  if (!s.is_ok()) return s;
  return out;
}

// simdjson's max_depth refuses a body whose innermost non-empty array or
// object is at level max_depth, which json_depth_within(kMaxJsonDepth)
// accepts; json_depth_within decides, simdjson only needs the room.
constexpr std::size_t kParserMaxDepth = kMaxJsonDepth + 1;

// One parser per thread, its buffers reused between deliveries. The input
// is copied into the parser's padded buffer (realloc_if_needed).
dom::parser& thread_parser() {
  thread_local dom::parser parser;
  return parser;
}

simdjson::error_code parse_document(dom::parser& parser, std::string_view text,
                                    dom::element& root) {
  if (parser.capacity() < text.size() || parser.max_depth() != kParserMaxDepth) {
    if (auto err = parser.allocate(std::max(text.size(), kInitialCapacity), kParserMaxDepth)) {
      return err;
    }
  }
  return parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(root);
}

// Releases the thread's parser buffers when a large body grew them; on
// destruction, so after the returned event was built.
struct ReleaseLargeBuffers {
  ReleaseLargeBuffers() = default;
  ReleaseLargeBuffers(const ReleaseLargeBuffers&) = delete;
  ReleaseLargeBuffers& operator=(const ReleaseLargeBuffers&) = delete;
  ~ReleaseLargeBuffers() {
    dom::parser& parser = thread_parser();
    if (parser.capacity() > kRetainedCapacity) parser = dom::parser{};
  }
};

}  // namespace

bool json_depth_within(std::string_view body, int max_depth) {
  int depth = 0;
  JsonStrings strings;
  for (char c : body) {
    if (strings.inside(c)) continue;
    switch (c) {
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
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  if (body.starts_with(kByteOrderMark)) body.remove_prefix(kByteOrderMark.size());
  if (!json_depth_within(body, kMaxJsonDepth)) {
    return Status::error("body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  const ReleaseLargeBuffers release_large_buffers;
  dom::element root;
  switch (parse_document(thread_parser(), body, root)) {
    case SUCCESS: return event_from(root);
    case simdjson::NUMBER_ERROR:
      return Status::error("body is not valid JSON: a number is malformed or beyond 64 bits");
    default: return Status::error("body is not valid JSON");
  }
}

}  // namespace runsync
