// Durations as the config file writes them. Pure.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace runsync {

// Parses "250ms", "30s", "5m", "1h", "1d" (a whole number and one unit);
// nullopt for anything else, zero, or a value that does not fit.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
// The shortest text parse_duration reads back as `duration`, e.g. "90s", "1h".
std::string render_duration(std::chrono::milliseconds duration);

}  // namespace runsync
