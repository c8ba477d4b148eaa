// The daemon's logger: spdlog to stderr. Under journald (JOURNAL_STREAM set
// and matching stderr) lines carry syslog priority prefixes ("<4>") and no
// timestamps, so `journalctl -p warning` works; in a terminal they carry
// timestamps. Every message is written on one line: control characters in
// it (a newline inside a sender's event name, say) are escaped as \n, \r,
// \t or \xNN, so no text from outside can start a line of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace spdlog {
class logger;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace runsync {

using Logger = std::shared_ptr<spdlog::logger>;

// True when stderr is the journal stream named by JOURNAL_STREAM.
bool stderr_is_journal();

// A logger named "runsync" writing to stderr; `journald` picks the format.
Logger make_logger(bool journald);
// The same logger writing to `sink` (tests read what it writes).
Logger make_logger(bool journald, std::shared_ptr<spdlog::sinks::sink> sink);

// Parses trace/debug/info/warn/error; nullopt for anything else.
std::optional<int> parse_log_level(const std::string& name);  // spdlog::level::level_enum
void set_log_level(const Logger& logger, int level);

// A logger that drops everything, for tests and one-shot commands.
Logger null_logger();

// `text` with control characters escaped (\n, \r, \t, \xNN) and cut to
// `max_bytes`, followed by "…(N bytes)" when it was cut: for strings from
// outside (event names, paths) that a log line quotes.
std::string log_text(std::string_view text, std::size_t max_bytes = 200);

// Lets the first line of each kind through, then counts and holds back the
// others of that kind until `window` has passed since the last one let
// through; the next one let through says how many were held back.
//
// Thread safety: admit() may be called from any thread.
class LogRateLimiter {
 public:
  // `clock` must outlive the limiter.
  explicit LogRateLimiter(const Clock& clock,
                          std::chrono::seconds window = std::chrono::seconds(10));

  // nullopt: hold this line back (it is counted). Otherwise log it with the
  // returned text appended: "" when nothing was held back since the last
  // line of the kind, else e.g. " (and 2,858 more in the last 10 s)".
  std::optional<std::string> admit(std::string_view kind);

 private:
  struct Kind {
    Clock::TimePoint logged_at;
    std::uint64_t held_back = 0;
  };

  const Clock& clock_;
  std::chrono::seconds window_;
  std::mutex mu_;
  std::map<std::string, Kind, std::less<>> kinds_;
};

}  // namespace runsync
