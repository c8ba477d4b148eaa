// The schema migrations embedded in the binary (generated from
// migrations/NNNN_name.sql by cmake/embed_migrations.cmake).
#pragma once

#include <vector>

namespace runsync {

struct Migration {
  int version;       // the file's number; PRAGMA user_version after applying it
  const char* name;  // file name without .sql
  const char* sql;
};

// Sorted by version, starting at 1, without gaps.
const std::vector<Migration>& embedded_migrations();

}  // namespace runsync
