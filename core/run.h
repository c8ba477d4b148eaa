// A mirrored run as stored, and an observation of a run from any source.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "core/field.h"

namespace runsync {

// One row of `runs`. Values are indexed by Field; group_at holds, per
// FieldGroup, the observation time (unix s) that last set that group
// (0 = never observed).
struct RunRecord {
  std::int64_t run_id = 0;
  std::array<Value, kFieldCount> values{};
  std::array<std::int64_t, kGroupCount> group_at{};
  std::int64_t last_event_at = 0;   // webhook timestamp last applied, 0 = none
  std::int64_t last_polled_at = 0;  // poll Date last applied, 0 = none
  std::int64_t updated_at = 0;      // local time of the last write
  std::int64_t change_seq = 0;      // seq of the last run_changes row

  const Value& get(Field f) const { return values[static_cast<int>(f)]; }
  Value& at(Field f) { return values[static_cast<int>(f)]; }
  std::int64_t& observed_at(FieldGroup g) { return group_at[static_cast<int>(g)]; }
  std::int64_t observed_at(FieldGroup g) const { return group_at[static_cast<int>(g)]; }
  RunState state() const;  // kActive when the state column is NULL or unknown
};

// What a source claims about a run's lifecycle.
enum class StateClaim {
  kNone,       // says nothing about state
  kActive,     // run.started, or a poll with is_completed = false
  kEnded,      // a poll with is_completed = true: completed or aborted, it cannot tell
  kCompleted,  // run.completed, close_run
  kAborted,    // run.aborted
  kDeleted,    // run.deleted, delete_run, or a complete listing without it
};

// A partial view of one run at one moment. Only fields that are set were
// observed; a field set to a null Value was observed to be null.
struct Observation {
  std::int64_t run_id = 0;
  Source source = Source::kWebhook;
  std::int64_t observed_at = 0;  // unix seconds: event timestamp or server Date
  std::array<std::optional<Value>, kFieldCount> fields{};
  StateClaim state = StateClaim::kNone;
  // run.updated's `cases_added`: added to a known cases_count.
  std::optional<std::int64_t> cases_added;

  void set(Field f, Value v) { fields[static_cast<int>(f)] = std::move(v); }
  const std::optional<Value>& get(Field f) const { return fields[static_cast<int>(f)]; }
};

// SPEC §6 rule 2, for every channel: an observation is made at the time its
// sender claims (a webhook's timestamp, an API answer's Date header), but
// never later than the moment runsync received it, so a clock that runs
// ahead gains nothing and pins nothing; at its arrival when nothing is
// claimed.
constexpr std::int64_t observation_time(std::optional<std::int64_t> claimed,
                                        std::int64_t arrived_at) {
  return claimed && *claimed < arrived_at ? *claimed : arrived_at;
}

// What `source` learned at `observed_at`: run `run_id` no longer exists.
inline Observation deletion_observation(std::int64_t run_id, Source source,
                                        std::int64_t observed_at) {
  Observation o;
  o.run_id = run_id;
  o.source = source;
  o.observed_at = observed_at;
  o.state = StateClaim::kDeleted;
  return o;
}

}  // namespace runsync
