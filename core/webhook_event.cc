#include "core/webhook_event.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "core/json_text.h"

// What counts as JSON is RFC 8259 with numbers limited to 64 bits (§6 lets
// a parser limit the range): an integer must fit int64 or uint64 and a real
// a double. A leading UTF-8 byte order mark is skipped, which RFC 8259 §8.1
// lets a parser do and some senders need. The last of duplicate keys wins.

namespace runsync {
namespace {

using nlohmann::json;

// A member of an object, or nullptr when absent.
using Slot = const json*;

Slot member(const json& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

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
  bool in_string() const { return in_string_; }

 private:
  bool in_string_ = false;
  bool escaped_ = false;
};

// True when `token` is a number as RFC 8259 §6 writes it and within 64
// bits: an integer in [-2^63, 2^64), a real within a double's range.
bool number_within_64_bits(std::string_view token) {
  std::size_t i = 0;
  const bool negative = token.starts_with('-');
  if (negative) ++i;
  const std::size_t int_start = i;
  while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
  const std::string_view digits = token.substr(int_start, i - int_start);
  if (digits.empty() || (digits.size() > 1 && digits.front() == '0')) return false;
  bool real = false;
  if (i < token.size() && token[i] == '.') {
    real = true;
    const std::size_t start = ++i;
    while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    real = true;
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    const std::size_t start = i;
    while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i != token.size()) return false;
  // A real beyond a double's range reads as infinity; one too small is a
  // zero. (runsync keeps the C locale, whose decimal point is '.'.)
  if (real) return !std::isinf(std::strtod(std::string(token).c_str(), nullptr));
  std::uint64_t magnitude = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
  if (ec != std::errc()) return false;
  return !negative || magnitude <= std::uint64_t{1} << 63;
}

// True when `text` is UTF-8 (RFC 3629: shortest form, no surrogates, at
// most U+10FFFF).
bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int more = 0;
    unsigned char low = 0x80, high = 0xBF;  // the range of the byte after the lead
    if (lead < 0x80) {
      ++i;
      continue;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      more = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      more = 2;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      more = 3;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (text.size() - i <= static_cast<std::size_t>(more)) return false;
    for (int k = 1; k <= more; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if (b < (k == 1 ? low : 0x80) || b > (k == 1 ? high : 0xBF)) return false;
    }
    i += 1 + more;
  }
  return true;
}

// Where the first number written where a value belongs in `body` is
// malformed or beyond 64 bits (see number_within_64_bits), or runs into a
// character that cannot follow a number. npos when none does, and when the
// text is wrong as a whole, which is the error to report then: not UTF-8,
// a string left open, a control character in a string, an escaped quote
// outside one, or a last character that does not close the first. A
// number where no value belongs is the parser's syntax error.
std::size_t first_bad_number(std::string_view body) {
  if (!valid_utf8(body)) return std::string_view::npos;
  std::size_t found = std::string_view::npos;
  JsonStrings strings;
  std::string open;  // the containers around the scan, innermost last
  char last = '\0';  // the last character outside strings and white space
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (strings.inside(c)) {
      if (static_cast<unsigned char>(c) < 0x20) return std::string_view::npos;
      last = '"';
      continue;
    }
    if (c == '\\' && i + 1 < body.size() && body[i + 1] == '"') return std::string_view::npos;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (c == '-' || (c >= '0' && c <= '9')) {
      const bool value_expected = last == '\0' || last == ':' || last == '[' ||
                                  (last == ',' && !open.empty() && open.back() == '[');
      const std::size_t end = std::min(body.find_first_not_of("0123456789+-.eE", i), body.size());
      const bool ends_well =
          end == body.size() ||
          std::string_view(" \t\n\r,:[]{}").find(body[end]) != std::string_view::npos;
      if (value_expected && found == std::string_view::npos &&
          (!number_within_64_bits(body.substr(i, end - i)) || !ends_well)) {
        found = i;
      }
      i = end - 1;
      last = '0';
      continue;
    }
    if (c == '{' || c == '[') open.push_back(c);
    if ((c == '}' || c == ']') && !open.empty()) open.pop_back();
    last = c;
  }
  if (strings.in_string()) return std::string_view::npos;
  // The text must end with what closes its first character.
  const std::size_t first = body.find_first_not_of(" \t\n\r");
  if (first != std::string_view::npos && (body[first] == '{' || body[first] == '[') &&
      last != (body[first] == '{' ? '}' : ']')) {
    return std::string_view::npos;
  }
  return found;
}

bool holds_real(const json& v) {
  if (v.is_number_float()) return true;
  if (!v.is_structured()) return false;
  for (const json& child : v) {
    if (holds_real(child)) return true;
  }
  return false;
}

Status type_error(std::string_view path, std::string_view key, const char* want) {
  std::string message;
  message.reserve(path.size() + key.size() + 16);
  message.append(path).append(key).append(" must be ").append(want);
  return Status::error(std::move(message));
}

// The value of an integer that fits int64; nlohmann keeps every
// non-negative integer as unsigned.
std::optional<std::int64_t> int64_of(const json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return std::nullopt;
}

// An integer above INT64_MAX (and within 64 bits).
bool beyond_int64(const json& v) { return v.is_number_unsigned() && !int64_of(v); }

// Reads an optional integer field into `out`: absent → nullopt, null → a
// null Value.
Status read_int(Slot v, std::string_view path, std::string_view key, std::optional<Value>& out) {
  if (!v) return Status::ok();
  if (v->is_null()) {
    out = Value{};
  } else if (const auto n = int64_of(*v)) {
    out = Value{*n};
  } else if (beyond_int64(*v)) {
    return type_error(path, key, "an integer within 64 bits");
  } else {
    return type_error(path, key, "an integer or null");
  }
  return Status::ok();
}

// A count: an integer >= 0, or null (SPEC §4). Every count a known event
// carries goes through here.
Status read_count(Slot v, std::string_view path, std::string_view key, std::optional<Value>& out) {
  if (Status s = read_int(v, path, key, out); !s.is_ok()) return s;
  if (out && !is_valid_count(*out)) {
    out.reset();
    return type_error(path, key, "an integer >= 0 or null");
  }
  return Status::ok();
}

using IntReader = Status (*)(Slot, std::string_view, std::string_view, std::optional<Value>&);

// Copies an optional integer field, read by `read` (read_int or
// read_count), into the observation.
Status take_with(IntReader read, Slot v, std::string_view path, std::string_view key, Field f,
                 Observation& obs) {
  std::optional<Value> value;
  Status s = read(v, path, key, value);
  if (s.is_ok() && value) obs.set(f, std::move(*value));
  return s;
}

Status take_text(Slot v, std::string_view path, std::string_view key, Field f, Observation& obs) {
  if (!v) return Status::ok();
  if (v->is_null()) {
    obs.set(f, Value{});
  } else if (v->is_string()) {
    obs.set(f, Value{v->get<std::string>()});
  } else {
    return type_error(path, key, "a string or null");
  }
  return Status::ok();
}

#define RUNSYNC_TRY(expr)       \
  do {                          \
    Status s_ = (expr);         \
    if (!s_.is_ok()) return s_; \
  } while (0)

constexpr std::string_view kP = "payload.";

// Fields of the payload object `p`, by key.
Status take_count(const json& p, std::string_view key, Field f, Observation& obs) {
  return take_with(read_count, member(p, key), kP, key, f, obs);
}
Status take_text(const json& p, std::string_view key, Field f, Observation& obs) {
  return take_text(member(p, key), kP, key, f, obs);
}

Status parse_started(const json& p, Observation& obs) {
  RUNSYNC_TRY(take_text(p, "title", Field::kName, obs));
  RUNSYNC_TRY(take_text(p, "description", Field::kDescription, obs));
  RUNSYNC_TRY(take_count(p, "cases_count", Field::kCasesCount, obs));
  RUNSYNC_TRY(take_text(p, "environment", Field::kEnvironment, obs));
  if (const Slot plan = member(p, "plan")) {
    if (plan->is_null()) {
      obs.set(Field::kPlanId, Value{});
      obs.set(Field::kPlanName, Value{});
    } else if (plan->is_object()) {
      if (!take_with(read_int, member(*plan, "id"), kP, "plan.id", Field::kPlanId, obs).is_ok()) {
        return Status::error("payload.plan.id must be an integer or null");
      }
      if (!take_text(member(*plan, "title"), kP, "plan.title", Field::kPlanName, obs).is_ok()) {
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
Status parse_ended(const json& p, Observation& obs, std::int64_t ts, StateClaim claim) {
  RUNSYNC_TRY(take_count(p, "cases", Field::kCasesCount, obs));
  RUNSYNC_TRY(take_count(p, "passed", Field::kPassedCount, obs));
  RUNSYNC_TRY(take_count(p, "failed", Field::kFailedCount, obs));
  RUNSYNC_TRY(take_count(p, "blocked", Field::kBlockedCount, obs));
  RUNSYNC_TRY(take_count(p, "untested", Field::kUntestedCount, obs));
  RUNSYNC_TRY(take_count(p, "retest", Field::kRetestCount, obs));
  RUNSYNC_TRY(take_count(p, "skiped", Field::kSkippedCount, obs));
  RUNSYNC_TRY(take_count(p, "skipped", Field::kSkippedCount, obs));
  RUNSYNC_TRY(take_count(p, "duration", Field::kDurationMs, obs));
  obs.set(Field::kCompletedOn, Value{ts});
  obs.state = claim;
  return Status::ok();
}

Status parse_updated(const json& p, Observation& obs) {
  RUNSYNC_TRY(take_count(p, "cases_count", Field::kCasesCount, obs));
  if (!obs.get(Field::kCasesCount)) {
    // cases_added: an integer or null; only an integer is kept.
    std::optional<Value> added;
    RUNSYNC_TRY(read_count(member(p, "cases_added"), kP, "cases_added", added));
    if (added) {
      if (const auto* n = std::get_if<std::int64_t>(&*added)) obs.cases_added = *n;
    }
  }
  return Status::ok();
}

Status parse_report_changed(const json& p, Observation& obs) {
  const Slot v = member(p, "visible");
  if (!v) return Status::error("payload.visible is missing");
  const std::optional<std::int64_t> n = int64_of(*v);
  if (v->is_boolean()) {
    obs.set(Field::kReportVisible, Value{std::int64_t{v->get<bool>() ? 1 : 0}});
  } else if (n && (*n == 0 || *n == 1)) {
    obs.set(Field::kReportVisible, Value{*n});
  } else {
    return type_error(kP, "visible", "a boolean");
  }
  return Status::ok();
}

// The event in a parsed document, into `ev` (which starts empty).
Status fill_event(const json& doc, WebhookEvent& ev) {
  if (!doc.is_object()) return Status::error("body must be a JSON object");

  const Slot name = member(doc, "event_name");
  if (!name || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return Status::error("event_name must be a non-empty string");
  }
  ev.event_name = name->get<std::string>();

  const Slot ts = member(doc, "timestamp");
  if (!ts || !ts->is_number_integer()) {
    return Status::error("timestamp must be an integer (unix seconds)");
  }
  const std::optional<std::int64_t> ts_value = int64_of(*ts);
  if (!ts_value || *ts_value < 0) {
    return Status::error("timestamp must be a non-negative integer (unix seconds)");
  }
  ev.timestamp = *ts_value;

  const Slot code = member(doc, "project_code");
  if (!code || !code->is_string()) return Status::error("project_code must be a string");
  ev.project_code = code->get<std::string>();

  if (const Slot team_member = member(doc, "team_member_id");
      team_member && !team_member->is_null()) {
    if (const auto n = int64_of(*team_member)) {
      ev.team_member_id = *n;
    } else if (beyond_int64(*team_member)) {
      return type_error("", "team_member_id", "an integer within 64 bits or null");
    } else {
      return type_error("", "team_member_id", "an integer or null");
    }
  }

  const Slot payload = member(doc, "payload");
  if (!payload || !payload->is_object()) return Status::error("payload must be an object");
  const EventKind kind = event_kind(ev.event_name);
  ev.known = kind != EventKind::kOther;

  const Slot id = member(*payload, "id");
  const std::optional<std::int64_t> id_value = id ? int64_of(*id) : std::nullopt;
  const bool id_ok = id_value && *id_value > 0;
  if (id_ok) ev.run_id = *id_value;
  if (!ev.known) return Status::ok();  // journaled as ignored; its payload is not interpreted
  if (!id_ok) return Status::error("payload.id must be a positive integer");

  Observation& obs = ev.observation;
  obs.run_id = *ev.run_id;
  obs.source = Source::kWebhook;
  obs.observed_at = ev.timestamp;
  obs.set(Field::kProjectCode, Value{ev.project_code});

  const json& p = *payload;
  switch (kind) {
    case EventKind::kStarted: return parse_started(p, obs);
    case EventKind::kUpdated: return parse_updated(p, obs);
    case EventKind::kCompleted: return parse_ended(p, obs, ev.timestamp, StateClaim::kCompleted);
    case EventKind::kAborted: return parse_ended(p, obs, ev.timestamp, StateClaim::kAborted);
    case EventKind::kDeleted: obs.state = StateClaim::kDeleted; return Status::ok();
    case EventKind::kReportChanged: return parse_report_changed(p, obs);
    case EventKind::kOther: break;
  }
  return Status::ok();
}

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

EventKind event_kind(std::string_view name) {
  for (std::size_t i = 0; i + 1 < kEventKindCount; ++i) {
    const auto kind = static_cast<EventKind>(i);
    if (name == event_kind_name(kind)) return kind;
  }
  return EventKind::kOther;
}

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kStarted:
      return "run.started";
    case EventKind::kUpdated:
      return "run.updated";
    case EventKind::kCompleted:
      return "run.completed";
    case EventKind::kAborted:
      return "run.aborted";
    case EventKind::kDeleted:
      return "run.deleted";
    case EventKind::kReportChanged:
      return "run.report_changed";
    case EventKind::kOther:
      break;
  }
  return "other";
}

StatusOr<WebhookEvent> parse_webhook_event(std::string_view body) {
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  if (body.starts_with(kByteOrderMark)) body.remove_prefix(kByteOrderMark.size());
  if (!json_depth_within(body, kMaxJsonDepth)) {
    return Status::error("body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  if (Status s = refuse_nul_byte(body); !s.is_ok()) return s;
  // nlohmann skips a second byte order mark, which is not JSON.
  if (body.starts_with(kByteOrderMark)) return Status::error("body is not valid JSON");
  // The first problem in the text names the error: a number's, or any
  // other. nlohmann reads an integer beyond 64 bits as a real, so a
  // document without reals holds no number to look for.
  json doc;
  std::size_t error_at = std::string_view::npos;
  try {
    doc = json::parse(body);
  } catch (const json::parse_error& e) {
    error_at = e.byte;
  } catch (const json::out_of_range&) {  // a real beyond a double, which first_bad_number finds
    error_at = body.size();
  }
  if (error_at != std::string_view::npos || holds_real(doc)) {
    const std::size_t bad_number = first_bad_number(body);
    if (bad_number != std::string_view::npos && bad_number + 1 < error_at) {
      return Status::error("body is not valid JSON: a number is malformed or beyond 64 bits");
    }
  }
  if (error_at != std::string_view::npos) return Status::error("body is not valid JSON");
  StatusOr<WebhookEvent> out{WebhookEvent{}};
  if (Status s = fill_event(doc, *out); !s.is_ok()) return s;
  return out;
}

}  // namespace runsync
