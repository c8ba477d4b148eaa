#include "core/testrail_hint.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "core/json_text.h"

namespace runsync {
namespace {

using nlohmann::json;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return std::string(text);
}

// Up to 40 characters of `text` for an error message, control bytes escaped.
std::string shown(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 40)) {
    if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 40) out += "...";
  return out;
}

// A positive id from decimal digits; nullopt when it is not one.
std::optional<std::int64_t> decimal_id(std::string_view digits) {
  if (digits.empty() || digits.size() > 19) return std::nullopt;
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value <= 0) return std::nullopt;
  return value;
}

std::string where(const char* name, const std::string& pointer, HintFormat format) {
  if (format == HintFormat::kForm) {
    return std::string(name) + " (form field '" + json::json_pointer(pointer).back() + "')";
  }
  return std::string(name) + " (at " + pointer + ")";
}

// `value` as an id: nullopt for "not given", an error for a wrong value.
StatusOr<std::optional<std::int64_t>> id_from_text(std::string_view text, const char* name,
                                                   const std::string& pointer, HintFormat format) {
  if (text.empty()) return std::optional<std::int64_t>();
  if (auto id = decimal_id(text)) return std::optional<std::int64_t>(*id);
  return Status::error(where(name, pointer, format) +
                       " must be a positive integer or a string of decimal digits, got \"" +
                       shown(text) + "\"");
}

StatusOr<std::optional<std::int64_t>> id_from_json(const json& body, const char* name,
                                                   const std::string& pointer) {
  if (pointer.empty()) return std::optional<std::int64_t>();
  const json* value = nullptr;
  try {
    value = &body.at(json::json_pointer(pointer));
  } catch (const json::exception&) {
    return std::optional<std::int64_t>();  // not there: not given
  }
  if (value->is_null()) return std::optional<std::int64_t>();
  if (value->is_string()) {
    return id_from_text(value->get_ref<const std::string&>(), name, pointer, HintFormat::kJson);
  }
  if (value->is_number_integer()) {
    const bool positive =
        value->is_number_unsigned()
            ? value->get<std::uint64_t>() >= 1 &&
                  value->get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX)
            : value->get<std::int64_t>() > 0;
    if (positive) return std::optional<std::int64_t>(value->get<std::int64_t>());
  }
  return Status::error(where(name, pointer, HintFormat::kJson) +
                       " must be a positive integer or a string of decimal digits, got " +
                       shown(value->dump()));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding of one name or value.
StatusOr<std::string> form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      const int hi = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
      const int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return Status::error("body is not a valid form: bad percent escape in \"" + shown(text) +
                             "\"");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// The value of the first field named `name`, decoded; nullopt when absent.
StatusOr<std::optional<std::string>> form_field(std::string_view body, const std::string& name) {
  while (!body.empty()) {
    const std::size_t amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    auto key = form_decode(pair.substr(0, eq));
    if (!key) return key.status();
    if (*key != name) continue;
    auto value =
        form_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!value) return value.status();
    return std::optional<std::string>(std::move(value).value());
  }
  return std::optional<std::string>();
}

StatusOr<std::optional<std::int64_t>> id_from_form(std::string_view body, const char* name,
                                                   const std::string& pointer) {
  if (pointer.empty()) return std::optional<std::int64_t>();
  auto value = form_field(body, json::json_pointer(pointer).back());
  if (!value) return value.status();
  if (!*value) return std::optional<std::int64_t>();
  return id_from_text(trim(**value), name, pointer, HintFormat::kForm);
}

}  // namespace

const char* hint_kind_name(HintKind kind) {
  switch (kind) {
    case HintKind::kRun:
      return "run";
    case HintKind::kPlan:
      return "plan";
    case HintKind::kProject:
      return "project";
  }
  return "?";
}

std::optional<HintKind> hint_kind_from_name(std::string_view name) {
  for (HintKind kind : {HintKind::kRun, HintKind::kPlan, HintKind::kProject}) {
    if (name == hint_kind_name(kind)) return kind;
  }
  return std::nullopt;
}

Status check_hint_pointer(std::string_view pointer) {
  if (pointer.empty()) return Status::ok();
  try {
    json::json_pointer parsed{std::string(pointer)};
    if (parsed.empty() || parsed.back().empty()) {
      return Status::error("must name a field, e.g. \"/run_id\" (got \"" + shown(pointer) + "\")");
    }
  } catch (const json::exception&) {
    return Status::error("must be a JSON pointer such as \"/run_id\" or \"/data/run/id\" (got \"" +
                         shown(pointer) + "\"), or \"\" to read nothing");
  }
  return Status::ok();
}

StatusOr<HintFormat> hint_format(std::string_view content_type) {
  const std::string type = lower(trim(content_type.substr(0, content_type.find(';'))));
  const bool xml = type.ends_with("/xml") || type.ends_with("+xml");
  if (type.empty() || type == "application/json" || (type.starts_with("text/") && !xml) ||
      (type.starts_with("application/") && type.ends_with("+json"))) {
    return HintFormat::kJson;
  }
  if (type == "application/x-www-form-urlencoded") return HintFormat::kForm;
  return Status::error("unsupported Content-Type \"" + shown(type) +
                       "\": send application/json, text holding JSON, or "
                       "application/x-www-form-urlencoded");
}

HintKind Hint::kind() const {
  if (run_id) return HintKind::kRun;
  if (plan_id) return HintKind::kPlan;
  return HintKind::kProject;
}

std::int64_t Hint::id() const {
  if (run_id) return *run_id;
  if (plan_id) return *plan_id;
  return project_id.value_or(0);
}

StatusOr<Hint> parse_hint(std::string_view body, HintFormat format, const HintPointers& pointers) {
  Hint hint;
  struct Place {
    const char* name;
    const std::string& pointer;
    std::optional<std::int64_t>& out;
  };
  const Place places[] = {{"run_id", pointers.run_id, hint.run_id},
                          {"plan_id", pointers.plan_id, hint.plan_id},
                          {"project_id", pointers.project_id, hint.project_id}};
  if (Status s = refuse_nul_byte(body, format == HintFormat::kJson ? "valid JSON" : "a valid form");
      !s.is_ok()) {
    return s;
  }
  if (format == HintFormat::kJson) {
    json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return Status::error("body is not valid JSON");
    if (!parsed.is_object()) return Status::error("body must be a JSON object");
    for (const Place& p : places) {
      auto id = id_from_json(parsed, p.name, p.pointer);
      if (!id) return id.status();
      p.out = *id;
    }
  } else {
    for (const Place& p : places) {
      auto id = id_from_form(body, p.name, p.pointer);
      if (!id) return id.status();
      p.out = *id;
    }
  }
  if (!hint.run_id && !hint.plan_id && !hint.project_id) {
    std::string message = "the hint names no run, plan or project: expected ";
    message += format == HintFormat::kForm ? "form fields " : "ids at ";
    bool first = true;
    for (const Place& p : places) {
      if (p.pointer.empty()) continue;
      if (!first) message += ", ";
      first = false;
      message += format == HintFormat::kForm ? json::json_pointer(p.pointer).back() : p.pointer;
    }
    return Status::error(message + " (see [testrail_webhook] run_id, plan_id, project_id)");
  }
  return hint;
}

}  // namespace runsync
