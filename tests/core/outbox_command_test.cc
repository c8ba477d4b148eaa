// Table test of check_command: the refusals write-back makes however a
// command was queued (SPEC §7).
#include "core/outbox_command.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace runsync {
namespace {

RunRecord mirrored(std::int64_t run_id, RunState state, std::optional<std::int64_t> plan) {
  RunRecord r;
  r.run_id = run_id;
  r.at(Field::kState) = std::string(state_name(state));
  if (plan) r.at(Field::kPlanId) = *plan;
  return r;
}

TEST(CheckCommand, Table) {
  const std::vector<std::int64_t> projects = {1, 4};
  const RunRecord active = mirrored(7, RunState::kActive, std::nullopt);
  const RunRecord completed = mirrored(7, RunState::kCompleted, std::nullopt);
  const RunRecord deleted = mirrored(7, RunState::kDeleted, std::nullopt);
  const RunRecord in_plan = mirrored(7, RunState::kActive, 12);
  struct Case {
    const char* name;
    CommandKind kind;
    std::int64_t target;
    std::optional<std::string> target_not_integer;
    nlohmann::json body;
    const RunRecord* run;
    std::string error;  // empty: allowed
  };
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json named = {{"name", "n"}};
  // clang-format off
  const Case cases[] = {
      {"add_run to a configured project", CommandKind::kAddRun, 4, {}, named, nullptr, ""},
      {"add_run to another project", CommandKind::kAddRun, 5, {}, named, nullptr,
       "project 5 is not a configured [[project]]"},
      {"validation comes first", CommandKind::kAddRun, 5, {}, none, nullptr,
       "add_run: name is required"},
      {"a run the mirror does not know", CommandKind::kCloseRun, 7, {}, none, nullptr, ""},
      {"an active run", CommandKind::kUpdateRun, 7, {}, named, &active, ""},
      {"a completed run may be deleted", CommandKind::kDeleteRun, 7, {}, none, &completed, ""},
      {"a deleted run", CommandKind::kCloseRun, 7, {}, none, &deleted, "run 7 is deleted"},
      {"a plan's run", CommandKind::kUpdateRun, 7, {}, named, &in_plan,
       "run 7 belongs to test plan 12; TestRail changes plan runs through the plan's entries"},
      {"a REAL target", CommandKind::kCloseRun, 10, "10.7", none, nullptr,
       "close_run: target must be a positive run id, not 10.7"},
      {"a TEXT project", CommandKind::kAddRun, 0, "one", named, nullptr,
       "add_run: target must be a positive project id, not one"},
      {"a zero target", CommandKind::kDeleteRun, 0, {}, none, nullptr,
       "delete_run: target must be a positive run id"},
      {"a negative project", CommandKind::kAddRun, -1, {}, named, nullptr,
       "add_run: target must be a positive project id"},
  };
  // clang-format on
  for (const Case& k : cases) {
    OutboxCommand c;
    c.kind = k.kind;
    c.target = k.target;
    c.target_not_integer = k.target_not_integer;
    c.body = k.body;
    const Status s = check_command(c, {projects, k.run});
    EXPECT_EQ(s.is_ok() ? std::string() : s.message(), k.error) << k.name;
  }
}

}  // namespace
}  // namespace runsync
