#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

namespace runsync {
namespace {

// "%*" → "<N>", the syslog priority journald reads from the line start.
class PriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const char* p = "<6>";
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug: p = "<7>"; break;
      case spdlog::level::info: p = "<6>"; break;
      case spdlog::level::warn: p = "<4>"; break;
      case spdlog::level::err: p = "<3>"; break;
      case spdlog::level::critical: p = "<2>"; break;
      default: break;
    }
    dest.append(p, p + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

template <typename Out>
void append_escaped(std::string_view text, Out& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t plain = 0;  // start of the run of bytes copied as they are
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != 0x7f) continue;
    out.append(text.data() + plain, text.data() + i);
    plain = i + 1;
    char escaped[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
    std::size_t length = 4;
    if (c == '\n' || c == '\r' || c == '\t') {
      escaped[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
      length = 2;
    }
    out.append(escaped, escaped + length);
  }
  out.append(text.data() + plain, text.data() + text.size());
}

// "%~": the message, control characters escaped.
class EscapedMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    append_escaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessageFlag>();
  }
};

// 2858 → "2,858".
std::string with_thousands(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long dev = 0, ino = 0;
  if (std::sscanf(js, "%lu:%lu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

Logger make_logger(bool journald) {
  return make_logger(journald, std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

Logger make_logger(bool journald, std::shared_ptr<spdlog::sinks::sink> sink) {
  auto logger = std::make_shared<spdlog::logger>("runsync", std::move(sink));
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessageFlag>('~');
  if (journald) {
    formatter->add_flag<PriorityFlag>('*').set_pattern("%*%~");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %~");
  }
  logger->set_formatter(std::move(formatter));
  logger->flush_on(spdlog::level::trace);
  return logger;
}

std::optional<int> parse_log_level(const std::string& name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  return std::nullopt;
}

void set_log_level(const Logger& logger, int level) {
  logger->set_level(static_cast<spdlog::level::level_enum>(level));
}

Logger null_logger() {
  return std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
}

std::string log_text(std::string_view text, std::size_t max_bytes) {
  std::string out;
  append_escaped(text.substr(0, max_bytes), out);
  if (text.size() > max_bytes) out += "…(" + std::to_string(text.size()) + " bytes)";
  return out;
}

LogRateLimiter::LogRateLimiter(const Clock& clock, std::chrono::seconds window)
    : clock_(clock), window_(window) {}

std::optional<std::string> LogRateLimiter::admit(std::string_view kind) {
  const auto now = clock_.now();
  std::lock_guard lock(mu_);
  auto it = kinds_.find(kind);
  if (it == kinds_.end()) {
    kinds_.emplace(std::string(kind), Kind{now, 0});
    return std::string();
  }
  Kind& k = it->second;
  if (now - k.logged_at < window_) {
    ++k.held_back;
    return std::nullopt;
  }
  std::string note;
  if (k.held_back > 0) {
    const auto seconds =
        std::chrono::ceil<std::chrono::seconds>(now - k.logged_at).count();
    note = " (and " + with_thousands(k.held_back) + " more in the last " +
           std::to_string(seconds) + " s)";
  }
  k.logged_at = now;
  k.held_back = 0;
  return note;
}

}  // namespace runsync
