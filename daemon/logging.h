// The daemon's logger: spdlog to stderr. Under journald (JOURNAL_STREAM set
// and matching stderr) lines carry syslog priority prefixes ("<4>") and no
// timestamps, so `journalctl -p warning` works; in a terminal they carry
// timestamps.
#pragma once

#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}

namespace runsync {

using Logger = std::shared_ptr<spdlog::logger>;

// True when stderr is the journal stream named by JOURNAL_STREAM.
bool stderr_is_journal();

// A logger named "runsync" writing to stderr; `journald` picks the format.
Logger make_logger(bool journald);

// Parses trace/debug/info/warn/error; nullopt for anything else.
std::optional<int> parse_log_level(const std::string& name);  // spdlog::level::level_enum
void set_log_level(const Logger& logger, int level);

// A logger that drops everything, for tests and one-shot commands.
Logger null_logger();

}  // namespace runsync
