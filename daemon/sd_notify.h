// The service manager's notification protocol (sd_notify(3)) without
// libsystemd: state changes and watchdog pings sent as datagrams to the
// AF_UNIX socket named by $NOTIFY_SOCKET.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace runsync {

// Tells systemd about the daemon's life cycle (Type=notify, WatchdogSec=).
//
// Everything is read from the environment once, at construction:
//   NOTIFY_SOCKET  where to send; an absolute path, or a name starting with
//                  '@' for the abstract socket namespace. Unset or empty:
//                  every method is a no-op that returns ok.
//   WATCHDOG_USEC  the watchdog timeout systemd enforces, in microseconds.
//   WATCHDOG_PID   when set, the watchdog is meant for that process only:
//                  watchdog() and watchdog_interval() are inert unless it
//                  equals getpid() at the time of the call.
// The variables are left in the environment (runsync starts no children).
//
// Errors: every send returns a Status instead of throwing; the message names
// the socket and the errno text. A failed notification is not fatal to the
// daemon — the caller logs it and carries on. A send blocks only in the rare
// case that systemd's receive queue is full, as with libsystemd.
//
// Thread safety: all methods may be called concurrently from any thread.
// The object owns one socket, opened on the first send, closed on destruction.
class SdNotifier {
 public:
  // Returns the value of an environment variable, or nullopt when unset.
  using Environment = std::function<std::optional<std::string>(const std::string& name)>;

  explicit SdNotifier(const Environment& env);
  // Reads the real process environment.
  static SdNotifier from_process();

  ~SdNotifier();
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  // True when NOTIFY_SOCKET is set, i.e. a service manager is listening.
  bool enabled() const { return !socket_path_.empty(); }

  // READY=1: start-up finished (migrations applied, listener up). Also the
  // message that ends a reload begun with reloading().
  Status ready();
  // STATUS=<text>: one line shown by `systemctl status`. Line breaks in
  // `text` are replaced by spaces so they cannot start another assignment.
  Status status(std::string_view text);
  // STOPPING=1: shutdown has begun.
  Status stopping();
  // RELOADING=1 plus MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>: a reload (SIGHUP)
  // has begun; send ready() when it is done.
  Status reloading();
  // WATCHDOG=1: the event loop is alive. No-op (ok) when WATCHDOG_PID names
  // another process.
  Status watchdog();

  // The watchdog timeout from WATCHDOG_USEC — the full timeout, not the ping
  // period: callers should call watchdog() at least every half of this value
  // (sd_watchdog_enabled(3)). nullopt when the watchdog is off: WATCHDOG_USEC
  // unset, empty, zero or malformed, or WATCHDOG_PID set to another process.
  std::optional<std::chrono::microseconds> watchdog_interval() const;

  // Sends `message` (newline-separated VAR=value assignments) verbatim.
  // The methods above are built on it.
  Status notify(std::string_view message);

 private:
  bool watchdog_is_ours() const;

  std::string socket_path_;  // as in NOTIFY_SOCKET; empty when disabled
  std::optional<std::chrono::microseconds> watchdog_usec_;
  // From WATCHDOG_PID; 0 when set but malformed, which matches no process.
  std::optional<pid_t> watchdog_pid_;

  std::mutex mu_;
  int fd_ = -1;  // guarded by mu_
};

}  // namespace runsync
