// Times as runsync shows them to people. Pure.
#pragma once

#include <cstdint>
#include <string>

namespace runsync {

// Time `unix_seconds` as ISO 8601 in UTC: "2026-12-03T08:00:00Z".
std::string iso_utc(std::int64_t unix_seconds);

}  // namespace runsync
