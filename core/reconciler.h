// The reconciliation rules of SPEC §6, as a pure function: given what the
// mirror holds for a run and one observation, decide the run's next row and
// what changed. No I/O; deterministic; safe to call from any thread.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/run.h"

namespace runsync {

// The fields a decision changed, each with the value it had before; the
// new values are the decision's `next`. A field set twice keeps the value
// it had first, and one set back to that value is no change at all.
class FieldChanges {
 public:
  bool empty() const { return size() == 0; }
  std::size_t size() const {
    return static_cast<std::size_t>(
        std::count_if(old_.begin(), old_.end(), [](const auto& v) { return v.has_value(); }));
  }
  bool contains(Field f) const { return old_[index(f)].has_value(); }
  // The value `f` had before. Only when contains(f).
  const Value& old_value(Field f) const { return *old_[index(f)]; }

  // `f` changes from `before` (its stored value) to `after`.
  void record(Field f, Value&& before, const Value& after) {
    std::optional<Value>& old = old_[index(f)];
    if (!old) {
      old = std::move(before);
    } else if (*old == after) {
      old.reset();  // back where it started
    }
  }

 private:
  static std::size_t index(Field f) { return static_cast<std::size_t>(f); }

  std::array<std::optional<Value>, kFieldCount> old_{};  // by Field; set when changed
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
  RunRecord next;        // the row to store when `write`
  FieldChanges changes;  // field → old value (new: `next`); empty when nothing changed
};

class Reconciler {
 public:
  // `current` is the stored row, or nullopt when the mirror has no such run.
  // `now` is the local clock, used only for `updated_at`.
  static Decision apply(const std::optional<RunRecord>& current, const Observation& obs,
                        std::int64_t now);
};

// The change log's JSON object for `changes`, new values from `next`:
// {"column": [old, new], ...}, keys sorted.
std::string changes_to_json(const FieldChanges& changes, const RunRecord& next);

}  // namespace runsync
