// A mirrored TestRail project, as configured by a [[project]] table.
#pragma once

#include <cstdint>
#include <string>

namespace runsync {

struct ProjectConfig {
  std::int64_t id = 0;  // TestRail project id
  std::string code;     // project_code in webhook events
};

}  // namespace runsync
