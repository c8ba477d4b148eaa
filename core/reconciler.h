// The reconciliation rules of SPEC §6, as a pure function: given what the
// mirror holds for a run and one observation, decide the run's next row and
// what changed. No I/O; deterministic; safe to call from any thread.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>

#include "core/run.h"

namespace runsync {

// The fields a decision changed, each with the value it had before; the
// new values are the decision's `next`. A field set twice keeps the value
// it had first, and one set back to that value is no change at all.
// Inline, no allocation: a poll's first sync changes every field of every
// run.
class FieldChanges {
 public:
  FieldChanges() = default;
  FieldChanges(const FieldChanges& other) { copy_from(other); }
  FieldChanges(FieldChanges&& other) noexcept { move_from(other); }
  FieldChanges& operator=(const FieldChanges& other) {
    if (this != &other) {
      clear();
      copy_from(other);
    }
    return *this;
  }
  FieldChanges& operator=(FieldChanges&& other) noexcept {
    if (this != &other) {
      clear();
      move_from(other);
    }
    return *this;
  }
  ~FieldChanges() { clear(); }

  bool empty() const { return changed_ == 0; }
  std::size_t size() const { return static_cast<std::size_t>(std::popcount(changed_)); }
  bool contains(Field f) const { return (changed_ & bit(f)) != 0; }
  // The value `f` had before. Only when contains(f).
  const Value& old_value(Field f) const { return *slot(index(f)); }

  // `f` changes from `before` (its stored value) to `after`.
  void record(Field f, Value&& before, const Value& after) {
    if (!contains(f)) {
      new (slot(index(f))) Value(std::move(before));
      changed_ |= bit(f);
    } else if (*slot(index(f)) == after) {
      slot(index(f))->~Value();  // back where it started
      changed_ &= ~bit(f);
    }
  }

 private:
  static_assert(kFieldCount <= 64, "one bit per field");
  static std::size_t index(Field f) { return static_cast<std::size_t>(f); }
  static std::uint64_t bit(Field f) { return std::uint64_t{1} << index(f); }
  Value* slot(std::size_t i) { return std::launder(reinterpret_cast<Value*>(&old_[i])); }
  const Value* slot(std::size_t i) const {
    return std::launder(reinterpret_cast<const Value*>(&old_[i]));
  }
  // Calls f(i) for each changed field's index.
  template <typename F>
  static void each(std::uint64_t bits, F f) {
    while (bits != 0) {
      f(static_cast<std::size_t>(std::countr_zero(bits)));
      bits &= bits - 1;
    }
  }
  void clear() {
    each(changed_, [&](std::size_t i) { slot(i)->~Value(); });
    changed_ = 0;
  }
  void copy_from(const FieldChanges& other) {
    each(other.changed_, [&](std::size_t i) { new (slot(i)) Value(*other.slot(i)); });
    changed_ = other.changed_;
  }
  void move_from(FieldChanges& other) {
    each(other.changed_, [&](std::size_t i) { new (slot(i)) Value(std::move(*other.slot(i))); });
    changed_ = other.changed_;
    other.clear();
  }

  std::uint64_t changed_ = 0;  // bit i: field i changed
  // Old values live only in the slots of changed fields: a decision is
  // made per observation, most change a few fields or none, and 34 values
  // built, moved and destroyed each time cost more than the changes.
  struct alignas(Value) Slot {
    unsigned char bytes[sizeof(Value)];
  };
  std::array<Slot, kFieldCount> old_;
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
