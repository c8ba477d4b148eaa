// Write-back commands (SPEC §7): what each one sends to the API and how its
// answer is observed in the mirror. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/run.h"
#include "core/status.h"

namespace runsync {

enum class CommandKind { kAddRun, kUpdateRun, kCloseRun, kDeleteRun };
const char* command_name(CommandKind kind);
std::optional<CommandKind> parse_command_name(std::string_view name);

// Where a command stands (SPEC §7; the outbox's `state` column): pending
// until its request may be sent, sending while it may be on its way, then
// done, failed or unknown (it may have been applied; never repeated).
enum class CommandState { kPending, kSending, kDone, kFailed, kUnknown };
const char* command_state_name(CommandState state);  // "pending", "sending", ...
std::optional<CommandState> parse_command_state(std::string_view name);

struct OutboxCommand {
  std::int64_t id = 0;
  CommandKind kind = CommandKind::kAddRun;
  std::int64_t target = 0;  // project id for add_run, run id otherwise
  // Set when the stored target is not an integer (a row inserted with SQL
  // may hold a REAL such as 10.7, or TEXT): how it reads. Such a command is
  // refused, never rounded into some other target.
  std::optional<std::string> target_not_integer;
  nlohmann::json body = nlohmann::json::object();
  std::int64_t created_at = 0;
};

// Checks a command before it is queued or sent: a positive target, a JSON
// object body with the API's field types (name, description, refs strings;
// suite_id, milestone_id, assignedto_id positive integers; include_all
// boolean; case_ids, config_ids arrays of positive integers), name required
// for add_run, at least one field for update_run, an empty body for
// close_run and delete_run. The message names the offending field.
Status validate_command(const OutboxCommand& command);

// What the refusals of check_command depend on besides the command.
struct CommandContext {
  std::span<const std::int64_t> configured_projects;  // the [[project]] ids
  // The mirror's row of the target run (not for add_run); null when the
  // mirror does not know the run.
  const RunRecord* target_run = nullptr;
};

// Whether write-back may carry out `command`, however it was queued (the
// CLI, or an INSERT into the outbox table): validate_command, then refuses
// an add_run to a project that is not configured (its run would never be
// polled), a run the mirror knows as deleted, and a run that belongs to a
// test plan (TestRail changes those through the plan's entries). The
// message is the reason, e.g. "run 7 is deleted".
Status check_command(const OutboxCommand& command, const CommandContext& context);

// The JSON an outbox row's body holds (SQL may have written anything
// there), or why it is not JSON, e.g. "body is not valid JSON: it holds a
// NUL byte at offset 13".
StatusOr<nlohmann::json> parse_command_body(std::string_view text);

// The API path, e.g. "add_run/1" or "close_run/42".
std::string command_uri(const OutboxCommand& command);

// How a successful answer is observed: the returned run (add, update,
// close), or a tombstone for delete_run. Source kApi.
StatusOr<Observation> observe_command_result(const OutboxCommand& command,
                                             const nlohmann::json& answer,
                                             std::int64_t observed_at);

}  // namespace runsync
