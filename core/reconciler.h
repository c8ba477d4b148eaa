// The reconciliation rules of SPEC §6, as a pure function: given what the
// mirror holds for a run and one observation, decide the run's next row and
// what changed. No I/O; deterministic; safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/run.h"

namespace runsync {

struct FieldChange {
  Field field;
  Value old_value;
  Value new_value;
};

struct Decision {
  enum class Outcome {
    kApplied,  // at least one group of the observation was current enough to take
    kStale,    // every group it carried was older than the mirror's, or the state
               // rules refused it (e.g. anything about a deleted run)
  };
  Outcome outcome = Outcome::kStale;
  bool created = false;  // the mirror did not know the run
  // The row must be written: fields changed, or (for webhook and api
  // sources) bookkeeping such as group times advanced. A poll that finds
  // nothing new never needs a write (rule 6).
  bool write = false;
  RunRecord next;                    // the row to store when `write`
  std::vector<FieldChange> changes;  // field → [old, new]; empty when nothing changed
};

class Reconciler {
 public:
  // `current` is the stored row, or nullopt when the mirror has no such run.
  // `now` is the local clock, used only for `updated_at`.
  static Decision apply(const std::optional<RunRecord>& current, const Observation& obs,
                        std::int64_t now);
};

// The change log's JSON object for `changes`: {"column": [old, new], ...}.
std::string changes_to_json(const std::vector<FieldChange>& changes);

}  // namespace runsync
