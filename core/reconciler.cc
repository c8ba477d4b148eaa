#include "core/reconciler.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

namespace runsync {
namespace {

// Counts are never negative (the parsers refuse them), so only the top
// can be crossed: a sum beyond it stays at the largest count SQLite holds.
std::int64_t saturating_add(std::int64_t count, std::int64_t added) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(count, added, &sum)) {
    return added > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
  }
  return sum;
}

bool group_present(const Observation& obs, FieldGroup g) {
  for (const auto& info : all_fields()) {
    if (info.group == g && obs.get(info.field).has_value()) return true;
  }
  return false;
}

// Copies `v` only when it differs: a re-poll compares every field.
void set_value(RunRecord& next, Field f, const Value& v, FieldChanges& changes) {
  Value& slot = next.at(f);
  if (slot == v) return;
  changes.record(f, std::move(slot), v);
  slot = v;
}

// The state an observation's claim moves `current` to, or nullopt when the
// claim changes nothing. `newer` tells whether the observation is at least
// as new as what set the state group (ties go to the later arrival).
struct StateStep {
  std::optional<RunState> target;  // new state to store
  bool consistent = true;          // the claim agrees with the resulting state
};

StateStep step_state(std::optional<RunState> current, StateClaim claim, bool newer) {
  const int rank = current ? state_rank(*current) : -1;
  switch (claim) {
    case StateClaim::kNone:
      return {};
    case StateClaim::kActive:
      if (rank < 0) return {RunState::kActive, true};
      return {std::nullopt, rank == 0};
    case StateClaim::kEnded:
      if (rank < 1) return {RunState::kCompleted, true};
      return {std::nullopt, rank == 1};
    case StateClaim::kCompleted:
    case StateClaim::kAborted: {
      const RunState want =
          claim == StateClaim::kCompleted ? RunState::kCompleted : RunState::kAborted;
      if (rank < 1) return {want, true};
      if (rank == 1 && *current != want && newer) return {want, true};
      return {std::nullopt, current == want};
    }
    case StateClaim::kDeleted:
      if (rank < 2) return {RunState::kDeleted, true};
      return {std::nullopt, true};
  }
  return {};
}

}  // namespace

RunState RunRecord::state() const {
  if (const auto* s = std::get_if<std::string>(&get(Field::kState))) {
    if (auto parsed = parse_state(*s)) return *parsed;
  }
  return RunState::kActive;
}

namespace {

// Details, counts and report: the newest observation wins, per group
// (rule 2). Returns whether any group was accepted.
bool apply_groups(const Observation& obs, Decision& d) {
  RunRecord& next = d.next;
  const std::int64_t at = obs.observed_at;
  bool accepted_any = false;
  for (FieldGroup g : {FieldGroup::kDetails, FieldGroup::kCounts, FieldGroup::kReport}) {
    const bool has_delta = g == FieldGroup::kCounts && obs.cases_added.has_value();
    if (!group_present(obs, g) && !has_delta) continue;
    const std::int64_t previous_at = next.observed_at(g);
    if (at < previous_at) continue;
    accepted_any = true;
    next.observed_at(g) = at;
    for (const auto& info : all_fields()) {
      if (info.group != g) continue;
      const auto& v = obs.get(info.field);
      if (!v) continue;
      if (info.webhook_only && obs.source == Source::kPoll && is_null(*v)) continue;  // rule 8
      set_value(next, info.field, *v, d.changes);
    }
    // A delta cannot tell a redelivery from a second event in the same
    // second, so it counts only when strictly newer: at most once per event.
    if (has_delta && at > previous_at) {
      if (const auto* base = std::get_if<std::int64_t>(&next.get(Field::kCasesCount))) {
        set_value(next, Field::kCasesCount, saturating_add(*base, *obs.cases_added), d.changes);
      }
    }
  }
  return accepted_any;
}

// State: only moves forward (rule 3), whatever the timestamps say, since a
// run really never goes back; between completed and aborted the newer
// observation wins, and a poll's is_completed never picks one (rule 8).
// Returns whether the state claim was accepted.
bool apply_state(std::optional<RunState> cur_state, const Observation& obs, Decision& d) {
  if (obs.state == StateClaim::kNone && !group_present(obs, FieldGroup::kState)) return false;
  RunRecord& next = d.next;
  const std::int64_t at = obs.observed_at;
  const bool newer = at >= next.observed_at(FieldGroup::kState);
  const StateStep step = step_state(cur_state, obs.state, newer);
  const bool moved = step.target.has_value();
  if (!moved && !(newer && step.consistent)) return false;
  if (moved) set_value(next, Field::kState, state_name(*step.target), d.changes);
  const RunState result = step.target.value_or(cur_state.value_or(RunState::kActive));
  if (result != RunState::kDeleted) {
    if (const auto& v = obs.get(Field::kCompletedOn)) {
      set_value(next, Field::kCompletedOn, *v, d.changes);
    }
    set_value(next, Field::kIsCompleted, std::int64_t{state_rank(result) >= 1 ? 1 : 0}, d.changes);
  }
  // The state's time judges only completed against aborted, so only a
  // claim of one of them sets it: a run.started, or a poll (whose
  // is_completed cannot tell the two apart), must not make a run.aborted
  // that happened before it but arrives after it stale.
  const bool says_how_it_ended = obs.state == StateClaim::kCompleted ||
                                 obs.state == StateClaim::kAborted ||
                                 obs.state == StateClaim::kDeleted;
  if (says_how_it_ended && at > next.observed_at(FieldGroup::kState)) {
    next.observed_at(FieldGroup::kState) = at;
  }
  return true;
}

// A new row needs a state and is_completed whatever the event said: a
// run.deleted for a run never seen is a tombstone, not known to have ended
// (rule 5).
void complete_new_row(Decision& d) {
  if (is_null(d.next.get(Field::kState))) {
    set_value(d.next, Field::kState, state_name(RunState::kActive), d.changes);
  }
  if (is_null(d.next.get(Field::kIsCompleted))) {
    set_value(d.next, Field::kIsCompleted, std::int64_t{0}, d.changes);
  }
}

}  // namespace

Decision Reconciler::apply(const std::optional<RunRecord>& current, const Observation& obs,
                           std::int64_t now) {
  Decision d;
  d.created = !current.has_value();
  d.next = current ? *current : RunRecord{};
  d.next.run_id = obs.run_id;
  RunRecord& next = d.next;

  std::optional<RunState> cur_state;
  if (current && !is_null(current->get(Field::kState))) cur_state = current->state();
  if (cur_state == RunState::kDeleted) return d;  // tombstones never change (rule 3)

  const bool groups_accepted = apply_groups(obs, d);
  const bool state_accepted = apply_state(cur_state, obs, d);
  if (d.created) complete_new_row(d);
  if (!groups_accepted && !state_accepted) return d;

  for (Field f : {Field::kProjectId, Field::kProjectCode}) {
    const auto& v = obs.get(f);
    if (v && !is_null(*v) && is_null(next.get(f))) set_value(next, f, *v, d.changes);
  }
  d.outcome = Decision::Outcome::kApplied;
  d.write = !d.changes.empty() || (obs.source != Source::kPoll);
  if (!d.write) return d;
  const std::int64_t at = obs.observed_at;
  if (obs.source == Source::kWebhook && at > next.last_event_at) next.last_event_at = at;
  if (obs.source == Source::kPoll && at > next.last_polled_at) next.last_polled_at = at;
  next.updated_at = now;
  return d;
}

namespace {

nlohmann::json to_json(const Value& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (const auto* t = std::get_if<std::string>(&v)) return *t;
  return nullptr;
}

}  // namespace

std::string changes_to_json(const FieldChanges& changes, const RunRecord& next) {
  nlohmann::json out = nlohmann::json::object();  // keys sorted: readers may compare the text
  for (const FieldInfo& info : all_fields()) {
    if (!changes.contains(info.field)) continue;
    out[info.column] = nlohmann::json::array(
        {to_json(changes.old_value(info.field)), to_json(next.get(info.field))});
  }
  // Text read from the database need not be UTF-8: an invalid byte becomes U+FFFD.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace runsync
