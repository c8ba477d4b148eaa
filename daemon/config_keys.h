// Reading the keys of the config file's TOML tables (config_file.cc): each
// key with its type and range checked, every problem reported as
// "FILE:LINE: section.key: what is wrong". Knows nothing of runsync's
// sections; config_file.cc says which keys there are. Included by the
// config reader only (it brings in toml++).
#pragma once

#include <toml++/toml.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace runsync::config_keys {

// "a string", "an integer", ... for a TOML value's type.
std::string type_name(toml::node_type type);

// Where problems found in the config file are reported: "FILE:LINE: ".
class FileContext {
 public:
  explicit FileContext(std::string path) : path_(std::move(path)) {}

  std::string at(const toml::source_region& source) const {
    if (source.begin.line == 0) return path_ + ": ";
    return path_ + ":" + std::to_string(source.begin.line) + ": ";
  }
  Status error(const toml::node& node, const std::string& message) const {
    return Status::error(at(node.source()) + message);
  }

 private:
  std::string path_;
};

// The keys of one table of the config file, read with type and range checks.
// A read_* call leaves `out` as it is when the key is absent, and returns an
// error naming the key when its value does not fit. Refers to `file` and
// `table`, which must outlive it.
class Section {
 public:
  Section(const FileContext& file, std::string name, const toml::table& table)
      : file_(file), name_(std::move(name)), table_(table) {}

  std::string qualified(std::string_view key) const {
    return name_.empty() ? std::string(key) : name_ + "." + std::string(key);
  }

  // Reports the first (by line) key not in `known`.
  Status check_keys(std::initializer_list<std::string_view> known) const;

  const toml::node* find(std::string_view key) const { return table_.get(key); }

  Status type_error(std::string_view key, const toml::node& node, std::string_view expected) const;
  Status error(std::string_view key, const std::string& message) const;
  // "FILE:LINE: " of the key, or of the table when the key is absent.
  std::string location(std::string_view key) const;

  Status read_string(std::string_view key, std::string& out) const;
  Status read_choice(std::string_view key, std::initializer_list<std::string_view> choices,
                     std::string& out) const;

  // read_choice for a closed vocabulary: `name` gives each value's text.
  template <typename E, std::size_t N>
  Status read_enum(std::string_view key, const E (&values)[N], const char* (*name)(E),
                   E& out) const {
    std::string text = name(out);
    std::string list;
    for (E value : values) {
      list += list.empty() ? "" : ", ";
      list += name(value);
    }
    if (Status s = read_string(key, text); !s) return s;
    for (E value : values) {
      if (text == name(value)) {
        out = value;
        return Status::ok();
      }
    }
    return error(key, "invalid value '" + text + "' (one of " + list + ")");
  }

  template <typename T>
  Status read_integer(std::string_view key, std::int64_t min, T& out) const {
    const toml::node* node = find(key);
    if (node == nullptr) return Status::ok();
    const auto* value = node->as_integer();
    if (value == nullptr) return type_error(key, *node, "an integer");
    const std::int64_t v = value->get();
    if (v < min) return error(key, "must be at least " + std::to_string(min));
    constexpr auto kMax = std::numeric_limits<T>::max();
    if (static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(kMax)) {
      return error(key, "must be at most " + std::to_string(kMax));
    }
    out = static_cast<T>(v);
    return Status::ok();
  }

  // A duration string such as "30s" (core/duration.h).
  Status read_duration(std::string_view key, std::chrono::milliseconds& out) const;

 private:
  const FileContext& file_;
  std::string name_;
  const toml::table& table_;
};

// Returns the sub-table `name` of the root, nullptr when absent; an error
// when `name` is there but not a table.
StatusOr<const toml::table*> section_table(const FileContext& file, const toml::table& root,
                                           std::string_view name);

}  // namespace runsync::config_keys
