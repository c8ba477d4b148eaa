// Deliveries of TestRail's own webhooks (SPEC §4a): the admin writes their
// payload as a template, so runsync reads nothing from them but the ids of
// what changed — a hint that the API has news about a run, a plan or a
// project. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace runsync {

enum class HintKind { kRun, kPlan, kProject };
const char* hint_kind_name(HintKind kind);  // "run", "plan", "project"
std::optional<HintKind> hint_kind_from_name(std::string_view name);

// Where each id is read: a JSON pointer (RFC 6901) into a JSON body; for a
// form body, the field named by the pointer's last segment. An empty
// pointer reads nothing.
struct HintPointers {
  std::string run_id = "/run_id";
  std::string plan_id = "/plan_id";
  std::string project_id = "/project_id";
};

// Why `pointer` cannot be a HintPointers entry, or ok. It must be empty, or
// start with '/', use "~" only as "~0" or "~1", and end in a non-empty
// segment (the field's name: "/" and "/a/" are refused).
Status check_hint_pointer(std::string_view pointer);

enum class HintFormat { kJson, kForm };

// The format of a body by its Content-Type (parameters such as charset are
// ignored): application/json, any +json type, text/* other than text/xml
// (text holding JSON) and a missing type are JSON;
// application/x-www-form-urlencoded is a form. Any other type (XML, which
// TestRail also offers, included) is an error naming the accepted ones.
StatusOr<HintFormat> hint_format(std::string_view content_type);

struct Hint {
  std::optional<std::int64_t> run_id;
  std::optional<std::int64_t> plan_id;
  std::optional<std::int64_t> project_id;

  // What to refresh: the run when the hint names one, else the plan, else
  // the project (a run's refresh covers its plan and project). Only for a
  // hint with at least one id.
  HintKind kind() const;
  std::int64_t id() const;
};

// The ids in `body`. Each may be a JSON integer or a string of decimal
// digits, and must be positive; null, "" or a missing place means "not
// given". Errors (each a message for a 400): a body that is not a JSON
// object or not a form, an id of another type or out of range, and a hint
// with no id at all.
StatusOr<Hint> parse_hint(std::string_view body, HintFormat format, const HintPointers& pointers);

}  // namespace runsync
