#include "core/outbox_command.h"

#include "core/json_text.h"
#include "core/testrail_api.h"

namespace runsync {
namespace {

bool positive_int(const nlohmann::json& v) {
  return v.is_number_integer() && v.get<std::int64_t>() > 0;
}

}  // namespace

const char* command_name(CommandKind kind) {
  switch (kind) {
    case CommandKind::kAddRun:
      return "add_run";
    case CommandKind::kUpdateRun:
      return "update_run";
    case CommandKind::kCloseRun:
      return "close_run";
    case CommandKind::kDeleteRun:
      return "delete_run";
  }
  return "?";
}

std::optional<CommandKind> parse_command_name(std::string_view name) {
  for (CommandKind k : {CommandKind::kAddRun, CommandKind::kUpdateRun, CommandKind::kCloseRun,
                        CommandKind::kDeleteRun}) {
    if (name == command_name(k)) return k;
  }
  return std::nullopt;
}

const char* command_state_name(CommandState state) {
  switch (state) {
    case CommandState::kPending:
      return "pending";
    case CommandState::kSending:
      return "sending";
    case CommandState::kDone:
      return "done";
    case CommandState::kFailed:
      return "failed";
    case CommandState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<CommandState> parse_command_state(std::string_view name) {
  for (CommandState s : {CommandState::kPending, CommandState::kSending, CommandState::kDone,
                         CommandState::kFailed, CommandState::kUnknown}) {
    if (name == command_state_name(s)) return s;
  }
  return std::nullopt;
}

Status validate_command(const OutboxCommand& c) {
  const std::string what = command_name(c.kind);
  if (c.target_not_integer) {
    return Status::error(what + ": target must be a positive " +
                         (c.kind == CommandKind::kAddRun ? "project id" : "run id") + ", not " +
                         *c.target_not_integer);
  }
  if (c.target <= 0) {
    return Status::error(what + ": target must be a positive " +
                         (c.kind == CommandKind::kAddRun ? "project id" : "run id"));
  }
  if (!c.body.is_object()) return Status::error(what + ": body must be a JSON object");
  if (c.kind == CommandKind::kCloseRun || c.kind == CommandKind::kDeleteRun) {
    if (!c.body.empty()) return Status::error(what + ": takes no fields");
    return Status::ok();
  }
  static const char* kText[] = {"name", "description", "refs"};
  static const char* kIds[] = {"suite_id", "milestone_id", "assignedto_id"};
  for (const auto& [key, value] : c.body.items()) {
    bool known = false;
    for (const char* k : kText) {
      if (key == k) {
        known = true;
        if (!value.is_string() && !(value.is_null() && key != "name")) {
          return Status::error(what + ": " + key + " must be a string");
        }
      }
    }
    for (const char* k : kIds) {
      if (key == k) {
        known = true;
        if (!positive_int(value) && !(value.is_null() && key != "suite_id")) {
          return Status::error(what + ": " + key + " must be a positive integer");
        }
      }
    }
    if (key == "include_all") {
      known = true;
      if (!value.is_boolean()) return Status::error(what + ": include_all must be true or false");
    }
    if (key == "case_ids" || key == "config_ids") {
      known = true;
      if (!value.is_array()) return Status::error(what + ": " + key + " must be an array");
      for (const auto& id : value) {
        if (!positive_int(id))
          return Status::error(what + ": " + key + " must hold positive integers");
      }
    }
    if (key == "suite_id" && c.kind == CommandKind::kUpdateRun) known = false;
    if (key == "config_ids" && c.kind == CommandKind::kUpdateRun) known = false;
    if (!known) return Status::error(what + ": unknown field '" + key + "'");
  }
  if (c.kind == CommandKind::kAddRun) {
    auto name = c.body.find("name");
    if (name == c.body.end() || !name->is_string() || name->get<std::string>().empty()) {
      return Status::error("add_run: name is required");
    }
  }
  if (c.kind == CommandKind::kUpdateRun && c.body.empty()) {
    return Status::error("update_run: nothing to update (give at least one field)");
  }
  if (c.body.contains("case_ids") && c.body.value("include_all", true)) {
    return Status::error(what + ": case_ids needs include_all = false");
  }
  return Status::ok();
}

StatusOr<nlohmann::json> parse_command_body(std::string_view text) {
  if (Status s = refuse_nul_byte(text); !s.is_ok()) return s;
  nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded()) return Status::error("body is not valid JSON");
  return body;
}

Status check_command(const OutboxCommand& c, const CommandContext& context) {
  if (Status valid = validate_command(c); !valid.is_ok()) return valid;
  if (c.kind == CommandKind::kAddRun) {
    for (std::int64_t id : context.configured_projects) {
      if (id == c.target) return Status::ok();
    }
    return Status::error("project " + std::to_string(c.target) +
                         " is not a configured [[project]]");
  }
  if (context.target_run == nullptr) return Status::ok();
  const RunRecord& run = *context.target_run;
  if (run.state() == RunState::kDeleted) {
    return Status::error("run " + std::to_string(c.target) + " is deleted");
  }
  if (const auto* plan = std::get_if<std::int64_t>(&run.get(Field::kPlanId))) {
    return Status::error("run " + std::to_string(c.target) + " belongs to test plan " +
                         std::to_string(*plan) +
                         "; TestRail changes plan runs through the plan's entries");
  }
  return Status::ok();
}

std::string command_uri(const OutboxCommand& c) {
  return std::string(command_name(c.kind)) + "/" + std::to_string(c.target);
}

StatusOr<Observation> observe_command_result(const OutboxCommand& c, const nlohmann::json& answer,
                                             std::int64_t observed_at) {
  if (c.kind == CommandKind::kDeleteRun) {
    return deletion_observation(c.target, Source::kApi, observed_at);
  }
  auto o = observation_from_api_run(answer, observed_at, Source::kApi);
  if (!o) return Status::error(std::string(command_name(c.kind)) + " answered: " + o.message());
  if (c.kind == CommandKind::kCloseRun) o->state = StateClaim::kCompleted;
  return o;
}

}  // namespace runsync
