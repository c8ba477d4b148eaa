// A fixed map from short keys to values, built at compile time, for the
// JSON parsers' hot paths (a run's keys in get_runs, a webhook's payload
// keys): the keys are kept sorted by length, so a lookup compares only with
// the keys of its own length, first byte first.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace runsync {

template <typename T, std::size_t N>
class KeyTable {
 public:
  struct Entry {
    std::string_view key;
    T value{};
  };
  static constexpr std::size_t kMaxKeyLength = 32;
  static_assert(N > 0 && N < 256, "first_ holds indexes as bytes");

  // Keys must be distinct, non-empty and at most kMaxKeyLength bytes long
  // (checked at compile time when the table is constexpr).
  constexpr explicit KeyTable(std::array<Entry, N> entries) : entries_(entries) {
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return a.key.size() != b.key.size() ? a.key.size() < b.key.size() : a.key < b.key;
    });
    for (std::size_t i = 0; i < N; ++i) {
      if (entries_[i].key.empty() || entries_[i].key.size() > kMaxKeyLength ||
          (i > 0 && entries_[i].key == entries_[i - 1].key)) {
        throw "KeyTable: keys must be distinct, non-empty and short";
      }
    }
    for (std::size_t n = 0; n < first_.size(); ++n) {
      std::size_t i = 0;
      while (i < N && entries_[i].key.size() < n) ++i;
      first_[n] = static_cast<std::uint8_t>(i);
    }
  }

  // The value of `key`, or nullptr.
  constexpr const T* find(std::string_view key) const {
    if (key.empty() || key.size() > kMaxKeyLength) return nullptr;
    for (std::size_t i = first_[key.size()]; i < first_[key.size() + 1]; ++i) {
      const std::string_view candidate = entries_[i].key;
      if (candidate[0] == key[0] && candidate == key) return &entries_[i].value;
    }
    return nullptr;
  }

 private:
  std::array<Entry, N> entries_{};
  // first_[n]: the index of the first key at least n bytes long.
  std::array<std::uint8_t, kMaxKeyLength + 2> first_{};
};

}  // namespace runsync
