#include "daemon/sd_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace runsync {
namespace {

using std::chrono::microseconds;

SdNotifier::Environment env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A datagram socket standing in for systemd's notification socket, bound to
// a path in a fresh temp directory or to a random abstract name.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      std::random_device rd;
      name_ = "@runsync-sd-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
      std::memcpy(addr.sun_path, name_.data(), name_.size());
      addr.sun_path[0] = '\0';
      len = offsetof(sockaddr_un, sun_path) + name_.size();
    } else {
      std::string tmpl =
          (std::filesystem::temp_directory_path() / "sd_notify_test.XXXXXX").string();
      EXPECT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
      dir_ = tmpl;
      name_ = dir_ + "/notify";
      std::memcpy(addr.sun_path, name_.c_str(), name_.size() + 1);
      len = offsetof(sockaddr_un, sun_path) + name_.size() + 1;
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  }
  ~FakeNotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // The value for NOTIFY_SOCKET.
  const std::string& name() const { return name_; }

  // The next datagram, or nullopt when none arrives within `timeout_ms`.
  std::optional<std::string> receive(int timeout_ms = 5000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

  // True when nothing is queued (everything sent is already in the socket
  // buffer when sendto returns, so no waiting is needed).
  bool empty() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  std::string dir_;
  std::string name_;
};

std::uint64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(now.tv_nsec) / 1'000u;
}

TEST(SdNotifierTest, SendsEveryStateToAPathSocket) {
  FakeNotifySocket sock(/*abstract=*/false);
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", sock.name()}}));
  ASSERT_TRUE(notifier.enabled());

  ASSERT_TRUE(notifier.ready().is_ok());
  EXPECT_EQ(sock.receive(), "READY=1");

  ASSERT_TRUE(notifier.status("polling 3 projects").is_ok());
  EXPECT_EQ(sock.receive(), "STATUS=polling 3 projects");

  ASSERT_TRUE(notifier.watchdog().is_ok());
  EXPECT_EQ(sock.receive(), "WATCHDOG=1");

  ASSERT_TRUE(notifier.stopping().is_ok());
  EXPECT_EQ(sock.receive(), "STOPPING=1");
  EXPECT_TRUE(sock.empty());
}

TEST(SdNotifierTest, ReloadingCarriesTheMonotonicClock) {
  FakeNotifySocket sock(/*abstract=*/false);
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", sock.name()}}));

  const std::uint64_t before = monotonic_usec();
  ASSERT_TRUE(notifier.reloading().is_ok());
  const std::uint64_t after = monotonic_usec();

  auto message = sock.receive();
  ASSERT_TRUE(message.has_value());
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(message->substr(0, prefix.size()), prefix);
  const std::uint64_t stamp = std::stoull(message->substr(prefix.size()));
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);
}

TEST(SdNotifierTest, StatusCannotInjectAnotherAssignment) {
  FakeNotifySocket sock(/*abstract=*/false);
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", sock.name()}}));
  ASSERT_TRUE(notifier.status("bad\nREADY=1").is_ok());
  EXPECT_EQ(sock.receive(), "STATUS=bad READY=1");
}

TEST(SdNotifierTest, SendsToAnAbstractSocket) {
  FakeNotifySocket sock(/*abstract=*/true);
  ASSERT_EQ(sock.name()[0], '@');
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", sock.name()}}));
  ASSERT_TRUE(notifier.ready().is_ok());
  EXPECT_EQ(sock.receive(), "READY=1");
}

TEST(SdNotifierTest, ConcurrentSendersAreAllDelivered) {
  FakeNotifySocket sock(/*abstract=*/false);
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", sock.name()}}));
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::vector<std::thread> senders;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        if (!notifier.watchdog().is_ok()) ++failures;
      }
    });
  }
  // The kernel queues only a few datagrams per socket; senders block until
  // this loop drains them.
  int received = 0;
  while (received < kThreads * kEach) {
    auto message = sock.receive();
    if (!message) break;
    EXPECT_EQ(*message, "WATCHDOG=1");
    ++received;
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(received, kThreads * kEach);
}

TEST(SdNotifierTest, WatchdogIntervalComesFromWatchdogUsec) {
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", "/nonexistent"}, {"WATCHDOG_USEC", "30000000"}}));
  EXPECT_EQ(notifier.watchdog_interval(), microseconds(30'000'000));

  SdNotifier own_pid(
      env_of({{"WATCHDOG_USEC", "2000000"}, {"WATCHDOG_PID", std::to_string(::getpid())}}));
  EXPECT_EQ(own_pid.watchdog_interval(), microseconds(2'000'000));
}

TEST(SdNotifierTest, WatchdogIsOffWithoutAValidWatchdogUsec) {
  EXPECT_EQ(SdNotifier(env_of({})).watchdog_interval(), std::nullopt);
  for (const char* bad : {"", "0", "-5", "abc", "12s", " 5"}) {
    SdNotifier notifier(env_of({{"WATCHDOG_USEC", bad}}));
    EXPECT_EQ(notifier.watchdog_interval(), std::nullopt) << "WATCHDOG_USEC=" << bad;
  }
}

TEST(SdNotifierTest, WatchdogPidOfAnotherProcessSuppressesTheWatchdog) {
  FakeNotifySocket sock(/*abstract=*/false);
  const std::string other_pid = std::to_string(::getpid() + 1);
  for (const std::string& pid : {other_pid, std::string("garbage")}) {
    SdNotifier notifier(env_of(
        {{"NOTIFY_SOCKET", sock.name()}, {"WATCHDOG_USEC", "1000000"}, {"WATCHDOG_PID", pid}}));
    EXPECT_EQ(notifier.watchdog_interval(), std::nullopt) << "WATCHDOG_PID=" << pid;
    EXPECT_TRUE(notifier.watchdog().is_ok());
    // Other notifications still go out; the watchdog ping does not.
    ASSERT_TRUE(notifier.ready().is_ok());
    EXPECT_EQ(sock.receive(), "READY=1");
    EXPECT_TRUE(sock.empty()) << "WATCHDOG_PID=" << pid;
  }
}

TEST(SdNotifierTest, WatchdogPidOfThisProcessAllowsTheWatchdog) {
  FakeNotifySocket sock(/*abstract=*/false);
  SdNotifier notifier(env_of({{"NOTIFY_SOCKET", sock.name()},
                              {"WATCHDOG_USEC", "1000000"},
                              {"WATCHDOG_PID", std::to_string(::getpid())}}));
  ASSERT_TRUE(notifier.watchdog().is_ok());
  EXPECT_EQ(sock.receive(), "WATCHDOG=1");
}

TEST(SdNotifierTest, WithoutNotifySocketEverythingIsANoOp) {
  for (auto env : {env_of({}), env_of({{"NOTIFY_SOCKET", ""}})}) {
    SdNotifier notifier(env);
    EXPECT_FALSE(notifier.enabled());
    EXPECT_TRUE(notifier.ready().is_ok());
    EXPECT_TRUE(notifier.status("x").is_ok());
    EXPECT_TRUE(notifier.watchdog().is_ok());
    EXPECT_TRUE(notifier.reloading().is_ok());
    EXPECT_TRUE(notifier.stopping().is_ok());
  }
}

TEST(SdNotifierTest, ReportsErrorsInsteadOfThrowing) {
  SdNotifier missing(env_of({{"NOTIFY_SOCKET", "/nonexistent/runsync/notify"}}));
  Status s = missing.ready();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("/nonexistent/runsync/notify"), std::string::npos) << s.message();

  SdNotifier relative(env_of({{"NOTIFY_SOCKET", "relative/notify"}}));
  EXPECT_FALSE(relative.ready().is_ok());

  SdNotifier too_long(env_of({{"NOTIFY_SOCKET", "/" + std::string(200, 'x')}}));
  EXPECT_FALSE(too_long.ready().is_ok());
}

}  // namespace
}  // namespace runsync
