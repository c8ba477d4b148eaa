#include "support/hostile_load.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace runsync::testing {
namespace {

struct Client {
  int fd = -1;
  std::size_t sent = 0;  // of head + body
  std::string received;
  bool eof = false;  // the server finished sending
  bool done = false;
};

}  // namespace

HostileLoadResult run_hostile_load(unsigned short port, std::size_t connections,
                                   const std::string& head, std::size_t body_bytes,
                                   std::chrono::milliseconds deadline,
                                   const std::function<void()>& tick) {
  HostileLoadResult result;
  const std::string body(64 * 1024, 'x');  // sent over and over
  const std::size_t total = head.size() + body_bytes;
  std::vector<Client> clients(connections);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::size_t open = 0;
  for (auto& c : clients) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0 || (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
                     errno != EINPROGRESS)) {
      ++result.reset;
      c.done = true;
      continue;
    }
    ++open;
  }
  auto finish = [&](Client& c) {
    c.done = true;
    --open;
    if (c.received.rfind("HTTP/1.", 0) == 0 && c.received.size() >= 12) {
      ++result.answered;
      ++result.statuses[std::atoi(c.received.c_str() + 9)];
      if (c.sent < total) ++result.body_incomplete;
    } else {
      ++result.reset;
    }
    ::close(c.fd);
  };
  const auto end = std::chrono::steady_clock::now() + deadline;
  auto next_tick = std::chrono::steady_clock::now();
  std::vector<pollfd> fds;
  std::vector<Client*> owners;
  char chunk[16 * 1024];
  while (open > 0 && std::chrono::steady_clock::now() < end) {
    fds.clear();
    owners.clear();
    for (auto& c : clients) {
      if (c.done) continue;
      fds.push_back({c.fd, static_cast<short>((c.eof ? 0 : POLLIN) | (c.sent < total ? POLLOUT : 0)),
                     0});
      owners.push_back(&c);
    }
    ::poll(fds.data(), fds.size(), 10);
    for (std::size_t i = 0; i < fds.size(); ++i) {
      Client& c = *owners[i];
      const short ev = fds[i].revents;
      if (!c.eof && (ev & (POLLIN | POLLHUP | POLLERR))) {
        const ssize_t got = ::recv(c.fd, chunk, sizeof chunk, 0);
        if (got > 0) {
          if (c.received.size() < 256) c.received.append(chunk, static_cast<std::size_t>(got));
        } else if (got == 0) {
          // The server half-closed: the body is still sent in full.
          c.eof = true;
          if (c.sent == total) finish(c);
          continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          finish(c);
          continue;
        }
      }
      if ((ev & POLLOUT) && c.sent < total) {
        const char* data;
        std::size_t length;
        if (c.sent < head.size()) {
          data = head.data() + c.sent;
          length = head.size() - c.sent;
        } else {
          length = std::min(body.size(), total - c.sent);
          data = body.data();
        }
        const ssize_t put = ::send(c.fd, data, length, MSG_NOSIGNAL);
        if (put > 0) {
          c.sent += static_cast<std::size_t>(put);
          if (c.sent == total) ::shutdown(c.fd, SHUT_WR);
          if (c.sent == total && c.eof) finish(c);
        } else if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          // Broken while sending; an answer already read still counts.
          finish(c);
        }
      }
    }
    if (tick && std::chrono::steady_clock::now() >= next_tick) {
      tick();
      next_tick = std::chrono::steady_clock::now() + std::chrono::milliseconds(10);
    }
  }
  for (auto& c : clients) {
    if (c.done) continue;
    ++result.unfinished;
    ::close(c.fd);
  }
  return result;
}

long proc_status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

bool reset_peak_rss(pid_t pid) {
  std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace runsync::testing
