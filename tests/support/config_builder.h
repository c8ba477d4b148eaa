// The tests' one builder of runsync.toml files.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "support/temp_dir.h"

namespace runsync::testing {

// A configuration with storage at `db`, the webhook listener on an
// ephemeral loopback port and project 1 (code "ID"); tables and keys are
// added with set() and lines(), and written in the order first named, each
// table once, before the [[project]].
//
//   ConfigBuilder(db).testrail(url, key_file).set("testrail", "poll_interval", "\"1h\"")
class ConfigBuilder {
 public:
  explicit ConfigBuilder(const std::string& db) {
    set("storage", "path", quoted(db));
    set("webhook", "listen", quoted("127.0.0.1:0"));
  }

  // `key = value` in [table]; `value` is TOML ("\"1s\"", "60", "true").
  ConfigBuilder& set(const std::string& table, const std::string& key, const std::string& value) {
    return lines(table, key + " = " + value + "\n");
  }

  // Raw TOML lines (each ending in a newline) appended to [table].
  ConfigBuilder& lines(const std::string& table, const std::string& text) {
    for (auto& [name, body] : tables_) {
      if (name == table) {
        body += text;
        return *this;
      }
    }
    tables_.emplace_back(table, text);
    return *this;
  }

  // [testrail] with `url`, `user` and, when given, `api_key_file`.
  ConfigBuilder& testrail(const std::string& url, const std::string& api_key_file = "",
                          const std::string& user = "ci@example.com") {
    set("testrail", "url", quoted(url));
    set("testrail", "user", quoted(user));
    if (!api_key_file.empty()) set("testrail", "api_key_file", quoted(api_key_file));
    return *this;
  }

  std::string toml() const {
    std::string out;
    for (const auto& [name, body] : tables_) out += "[" + name + "]\n" + body + "\n";
    return out + "[[project]]\nid = 1\ncode = \"ID\"\n";
  }

  // Writes toml() to `name` in `dir`; returns its path.
  std::string write(const TempDir& dir, const std::string& name = "runsync.toml") const {
    return dir.write(name, toml());
  }

  // `text` as a TOML basic string (the tests' paths and URLs need no escapes).
  static std::string quoted(const std::string& text) { return "\"" + text + "\""; }

 private:
  std::vector<std::pair<std::string, std::string>> tables_;
};

}  // namespace runsync::testing
