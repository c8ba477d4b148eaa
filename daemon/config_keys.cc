// Reading typed keys out of the config file's TOML tables (config_keys.h).
#include "daemon/config_keys.h"

#include <optional>

#include "core/duration.h"

namespace runsync::config_keys {

std::string type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

Status Section::check_keys(std::initializer_list<std::string_view> known) const {
  const toml::key* first = nullptr;
  for (const auto& [key, node] : table_) {
    bool is_known = false;
    for (std::string_view k : known) is_known = is_known || key.str() == k;
    if (is_known) continue;
    if (first == nullptr || key.source().begin.line < first->source().begin.line) first = &key;
  }
  if (first == nullptr) return Status::ok();
  return Status::error(file_.at(first->source()) + "unknown key '" + qualified(first->str()) + "'");
}

Status Section::type_error(std::string_view key, const toml::node& node,
                           std::string_view expected) const {
  return file_.error(node, qualified(key) + ": expected " + std::string(expected) + ", got " +
                               type_name(node.type()));
}

Status Section::error(std::string_view key, const std::string& message) const {
  const toml::node* node = find(key);
  const std::string where = node != nullptr ? file_.at(node->source()) : file_.at(table_.source());
  return Status::error(where + qualified(key) + ": " + message);
}

std::string Section::location(std::string_view key) const {
  const toml::node* node = find(key);
  return file_.at(node != nullptr ? node->source() : table_.source());
}

Status Section::read_string(std::string_view key, std::string& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Status::ok();
  const auto* value = node->as_string();
  if (value == nullptr) return type_error(key, *node, "a string");
  out = value->get();
  return Status::ok();
}

Status Section::read_choice(std::string_view key, std::initializer_list<std::string_view> choices,
                            std::string& out) const {
  std::string value = out;
  if (Status s = read_string(key, value); !s) return s;
  std::string list;
  for (std::string_view choice : choices) {
    if (value == choice) {
      out = value;
      return Status::ok();
    }
    list += list.empty() ? "" : ", ";
    list += choice;
  }
  return error(key, "invalid value '" + value + "' (one of " + list + ")");
}

Status Section::read_duration(std::string_view key, std::chrono::milliseconds& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Status::ok();
  const auto* value = node->as_string();
  if (value == nullptr) return type_error(key, *node, "a duration string such as \"30s\"");
  const std::optional<std::chrono::milliseconds> duration = parse_duration(value->get());
  if (!duration) {
    return error(key, "invalid duration '" + value->get() + "' (use e.g. 30s, 5m, 1h)");
  }
  out = *duration;
  return Status::ok();
}

StatusOr<const toml::table*> section_table(const FileContext& file, const toml::table& root,
                                           std::string_view name) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return static_cast<const toml::table*>(nullptr);
  if (const toml::table* table = node->as_table()) return table;
  return file.error(*node,
                    std::string(name) + ": expected a table, got " + type_name(node->type()));
}

}  // namespace runsync::config_keys
