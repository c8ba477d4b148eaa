#include "daemon/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <system_error>
#include <utility>

namespace runsync {
namespace {

// Parses a whole decimal number with no sign, spaces or suffix.
template <typename T>
std::optional<T> parse_unsigned(const std::string& text) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

}  // namespace

SdNotifier::SdNotifier(const Environment& env) {
  socket_path_ = env("NOTIFY_SOCKET").value_or("");

  if (auto usec = env("WATCHDOG_USEC")) {
    if (auto v = parse_unsigned<std::uint64_t>(*usec);
        v && *v > 0 && *v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      watchdog_usec_ = std::chrono::microseconds(static_cast<std::int64_t>(*v));
    }
  }
  if (auto pid = env("WATCHDOG_PID")) {
    auto v = parse_unsigned<pid_t>(*pid);
    watchdog_pid_ = (v && *v > 0) ? *v : 0;
  }
}

SdNotifier SdNotifier::from_process() {
  return SdNotifier([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

Status SdNotifier::ready() { return notify("READY=1"); }

Status SdNotifier::status(std::string_view text) {
  std::string message = "STATUS=";
  message.append(text);
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return notify(message);
}

Status SdNotifier::stopping() { return notify("STOPPING=1"); }

Status SdNotifier::reloading() {
  // systemd compares this with its own CLOCK_MONOTONIC, so it is the
  // kernel's clock, never an injected one.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000u +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1'000u;
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

Status SdNotifier::watchdog() {
  if (!watchdog_is_ours()) return Status::ok();
  return notify("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> SdNotifier::watchdog_interval() const {
  if (!watchdog_is_ours()) return std::nullopt;
  return watchdog_usec_;
}

bool SdNotifier::watchdog_is_ours() const { return !watchdog_pid_ || *watchdog_pid_ == ::getpid(); }

Status SdNotifier::notify(std::string_view message) {
  if (!enabled()) return Status::ok();

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // systemd accepts only absolute paths and abstract names.
  if (socket_path_[0] != '/' && socket_path_[0] != '@') {
    return Status::error("NOTIFY_SOCKET '" + socket_path_ +
                         "' is neither an absolute path nor an abstract name");
  }
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    return Status::error("NOTIFY_SOCKET '" + socket_path_ + "' is too long");
  }
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  socklen_t addr_len = offsetof(sockaddr_un, sun_path) + socket_path_.size();
  if (socket_path_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: the name is exactly the bytes given
  } else {
    addr_len += 1;  // the terminating NUL of a path name
  }

  std::lock_guard lock(mu_);
  if (fd_ < 0) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Status::error("sd_notify: socket: " + errno_text(errno));
  }
  ssize_t sent;
  do {
    sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), addr_len);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    return Status::error("sd_notify to '" + socket_path_ + "': " + errno_text(errno));
  }
  if (static_cast<std::size_t>(sent) != message.size()) {
    return Status::error("sd_notify to '" + socket_path_ + "': short write");
  }
  return Status::ok();
}

}  // namespace runsync
