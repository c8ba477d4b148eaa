// A raw loopback connection for listener tests: what an HTTP library would
// hide (the status line's version, Connection headers, the bytes after a
// HEAD answer's headers, the server closing or resetting). Reads wait at
// most 10 s. Not thread-safe; one owner.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

namespace runsync::testing {

// The status line of an answer's head.
inline std::string status_line(const std::string& head) {
  return head.substr(0, head.find("\r\n"));
}

// The Content-Length of an answer's head; npos when it has none.
inline std::size_t content_length(const std::string& head) {
  const auto at = head.find("Content-Length: ");
  if (at == std::string::npos) return std::string::npos;
  return std::stoul(head.substr(at + 16));
}

class RawConnection {
 public:
  explicit RawConnection(unsigned short port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Sends all of `bytes` (blocking); false when the connection broke first.
  bool send_all(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t put = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (put <= 0) return false;
      sent += static_cast<std::size_t>(put);
    }
    return true;
  }
  // Reads until `received()` holds `n` bytes or the server closes (true).
  // A reset or the receive timeout returns false, and sets reset().
  bool read_at_least(std::size_t n) {
    char chunk[4096];
    while (received_.size() < n) {
      const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got < 0) reset_ = errno == ECONNRESET;
      if (got <= 0) return got == 0;
      received_.append(chunk, static_cast<std::size_t>(got));
    }
    return false;
  }
  // Whether any bytes arrive within `wait` (the receive timeout is restored).
  bool answers_within(std::chrono::milliseconds wait) {
    timeval short_timeout{0, static_cast<suseconds_t>(wait.count() * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &short_timeout, sizeof short_timeout);
    const std::size_t before = received_.size();
    read_at_least(before + 1);
    const bool got = received_.size() > before;
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return got;
  }
  // What arrives until the server closes (or resets) the connection, or
  // with "<timeout>" appended when it is still open after the receive
  // timeout.
  std::string read_until_closed() {
    char chunk[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        received_.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      std::string got = std::move(received_);
      received_.clear();
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return got + "<timeout>";
      return got;
    }
  }
  // Reads one whole answer (head, then Content-Length bytes of body) and
  // returns its status line; "" when none came.
  std::string answer_status() {
    const std::string h = head();
    if (h.find("\r\n\r\n") == std::string::npos) return "";
    const std::size_t length = content_length(h);
    if (length != std::string::npos) take(length);
    return status_line(h);
  }
  bool reset() const { return reset_; }
  // One answer's head (through the blank line), reading as needed.
  std::string head() {
    std::size_t end;
    while ((end = received_.find("\r\n\r\n")) == std::string::npos) {
      if (read_at_least(received_.size() + 1)) break;
    }
    if (end == std::string::npos) return received_;
    std::string h = received_.substr(0, end + 4);
    received_.erase(0, end + 4);
    return h;
  }
  std::string take(std::size_t n) {
    read_at_least(n);
    std::string out = received_.substr(0, n);
    received_.erase(0, n);
    return out;
  }
  bool closed_by_server() { return read_at_least(received_.size() + 1); }
  const std::string& received() const { return received_; }

 private:
  int fd_;
  bool connected_ = false;
  bool reset_ = false;
  std::string received_;
};

}  // namespace runsync::testing
