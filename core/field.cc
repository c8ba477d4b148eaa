#include "core/field.h"

namespace runsync {
namespace {

using enum Field;
constexpr FieldGroup D = FieldGroup::kDetails;
constexpr FieldGroup C = FieldGroup::kCounts;
constexpr FieldGroup S = FieldGroup::kState;
constexpr FieldGroup R = FieldGroup::kReport;
constexpr FieldGroup X = FieldGroup::kIdentity;
constexpr ValueKind I = ValueKind::kInteger;
constexpr ValueKind T = ValueKind::kText;
constexpr ValueKind B = ValueKind::kBool;

constexpr std::array<FieldInfo, kFieldCount> kFields = {{
    {kProjectId, "project_id", X, I, false},
    {kProjectCode, "project_code", X, T, true},
    {kName, "name", D, T, false},
    {kDescription, "description", D, T, false},
    {kSuiteId, "suite_id", D, I, false},
    {kMilestoneId, "milestone_id", D, I, false},
    {kAssignedtoId, "assignedto_id", D, I, false},
    {kPlanId, "plan_id", D, I, false},
    {kPlanName, "plan_name", D, T, false},
    {kConfig, "config", D, T, false},
    {kEnvironment, "environment", D, T, true},
    {kRefs, "refs", D, T, false},
    {kUrl, "url", D, T, false},
    {kCreatedOn, "created_on", D, I, false},
    {kCreatedBy, "created_by", D, I, false},
    {kCompletedOn, "completed_on", S, I, false},
    {kState, "state", S, T, false},
    {kIsCompleted, "is_completed", S, B, false},
    {kCasesCount, "cases_count", C, I, false},
    {kPassedCount, "passed_count", C, I, false},
    {kFailedCount, "failed_count", C, I, false},
    {kBlockedCount, "blocked_count", C, I, false},
    {kUntestedCount, "untested_count", C, I, false},
    {kRetestCount, "retest_count", C, I, false},
    {kSkippedCount, "skipped_count", C, I, true},
    {kCustomStatus1Count, "custom_status1_count", C, I, false},
    {kCustomStatus2Count, "custom_status2_count", C, I, false},
    {kCustomStatus3Count, "custom_status3_count", C, I, false},
    {kCustomStatus4Count, "custom_status4_count", C, I, false},
    {kCustomStatus5Count, "custom_status5_count", C, I, false},
    {kCustomStatus6Count, "custom_status6_count", C, I, false},
    {kCustomStatus7Count, "custom_status7_count", C, I, false},
    {kDurationMs, "duration_ms", C, I, true},
    {kReportVisible, "report_visible", R, B, true},
}};

constexpr bool table_in_enum_order() {
  for (int i = 0; i < kFieldCount; ++i) {
    if (static_cast<int>(kFields[i].field) != i) return false;
  }
  return true;
}
static_assert(table_in_enum_order(), "kFields must list fields in enum order");

}  // namespace

const FieldInfo& field_info(Field f) { return kFields[static_cast<int>(f)]; }
const std::array<FieldInfo, kFieldCount>& all_fields() { return kFields; }

bool is_valid_count(const Value& value) {
  const auto* n = std::get_if<std::int64_t>(&value);
  return is_null(value) || (n != nullptr && *n >= 0);
}

const char* state_name(RunState s) {
  switch (s) {
    case RunState::kActive: return "active";
    case RunState::kCompleted: return "completed";
    case RunState::kAborted: return "aborted";
    case RunState::kDeleted: return "deleted";
  }
  return "?";
}

std::optional<RunState> parse_state(std::string_view s) {
  if (s == "active") return RunState::kActive;
  if (s == "completed") return RunState::kCompleted;
  if (s == "aborted") return RunState::kAborted;
  if (s == "deleted") return RunState::kDeleted;
  return std::nullopt;
}

int state_rank(RunState s) {
  switch (s) {
    case RunState::kActive: return 0;
    case RunState::kCompleted:
    case RunState::kAborted: return 1;
    case RunState::kDeleted: return 2;
  }
  return 0;
}

const char* source_name(Source s) {
  switch (s) {
    case Source::kWebhook: return "webhook";
    case Source::kPoll: return "poll";
    case Source::kApi: return "api";
  }
  return "?";
}

}  // namespace runsync
