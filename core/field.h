// The fields of a mirrored run, their column names and the groups that
// "newest observation wins" is judged by (SPEC §6 rule 2).
//
// Every other module refers to run fields through this table, so adding a
// column means adding one row here and one migration.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace runsync {

// A column value: SQL NULL, INTEGER or TEXT. Booleans are INTEGER 0/1.
using Value = std::variant<std::monostate, std::int64_t, std::string>;

inline bool is_null(const Value& v) { return std::holds_alternative<std::monostate>(v); }

// Groups with a time: the newest observation of the group wins. kIdentity
// (project id and code) has no time: it is filled in when unknown and a run
// never changes project.
enum class FieldGroup : int { kDetails = 0, kCounts, kState, kReport, kIdentity };
inline constexpr int kGroupCount = 4;  // the timed groups

enum class ValueKind { kInteger, kText, kBool };

enum class Field : int {
  kProjectId = 0,
  kProjectCode,
  kName,
  kDescription,
  kSuiteId,
  kMilestoneId,
  kAssignedtoId,
  kPlanId,
  kPlanName,
  kConfig,
  kEnvironment,
  kRefs,
  kUrl,
  kCreatedOn,
  kCreatedBy,
  kCompletedOn,
  kState,
  kIsCompleted,
  kCasesCount,
  kPassedCount,
  kFailedCount,
  kBlockedCount,
  kUntestedCount,
  kRetestCount,
  kSkippedCount,
  kCustomStatus1Count,
  kCustomStatus2Count,
  kCustomStatus3Count,
  kCustomStatus4Count,
  kCustomStatus5Count,
  kCustomStatus6Count,
  kCustomStatus7Count,
  kDurationMs,
  kReportVisible,
  kCount  // not a field
};
inline constexpr int kFieldCount = static_cast<int>(Field::kCount);

struct FieldInfo {
  Field field;
  const char* column;  // column name in `runs`, also the key in change logs
  FieldGroup group;
  ValueKind kind;
  bool webhook_only;  // SPEC §6 rule 8: a poll never clears it
};

const FieldInfo& field_info(Field f);
const std::array<FieldInfo, kFieldCount>& all_fields();

// SPEC §4 and §6: every field of the counts group is an integer >= 0 or
// null, whichever source observed it. The one test of that rule.
bool is_valid_count(const Value& value);

// A run's lifecycle state (SPEC §6 rule 3): active → completed | aborted → deleted.
enum class RunState { kActive, kCompleted, kAborted, kDeleted };
const char* state_name(RunState s);
std::optional<RunState> parse_state(std::string_view s);
// 0 for active, 1 for completed and aborted, 2 for deleted.
int state_rank(RunState s);

// Where an observation came from; also the `source` column of run_changes.
enum class Source { kWebhook, kPoll, kApi };
const char* source_name(Source s);

}  // namespace runsync
