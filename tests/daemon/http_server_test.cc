// The HTTP listener on its own (no router): how sessions live and die.
#include "daemon/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using runsync::testing::TestHttpClient;
using runsync::testing::TestResponse;
using runsync::testing::wait_until;

// An io_context on its own thread; `on_io` runs a function there and waits.
class IoThread {
 public:
  IoThread() : thread_([this] { ioc_.run(); }) {}
  ~IoThread() {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
  boost::asio::io_context& ioc() { return ioc_; }
  void on_io(const std::function<void()>& f) {
    std::promise<void> done;
    boost::asio::post(ioc_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::thread thread_;
};

// A raw loopback connection; reads wait at most 10 s.
class Raw {
 public:
  explicit Raw(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Raw() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // What arrives until the server closes (or resets) the connection, or
  // "<timeout>" when it is still open after 10 s.
  std::string read_until_closed() {
    std::string got;
    char chunk[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        got.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return got + "<timeout>";
      return got;
    }
  }
  // Reads one whole answer (head, then Content-Length bytes of body) and
  // returns its status line; "" when none came within 10 s.
  std::string status_line() {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd_, &c, 1, 0) == 1) head += c;
    const auto length_at = head.find("Content-Length: ");
    std::size_t body = length_at == std::string::npos ? 0 : std::stoul(head.substr(length_at + 16));
    while (body > 0 && ::recv(fd_, &c, 1, 0) == 1) --body;
    return head.substr(0, head.find("\r\n"));
  }

 private:
  int fd_;
  bool connected_ = false;
};

// A server on its own I/O thread whose head check wants `x-secret: s` and
// whose handler answers 200 at once; counts connections it shed, by reason.
class Listener {
 public:
  explicit Listener(HttpServerOptions options) {
    options.port = 0;
    io_.on_io([&] {
      server_.emplace(io_.ioc(), options, [](ServerRequest&&, Respond respond) {
        respond(ServerResponse::json(200, "{}"));
      });
      server_->set_head_check([](const ServerRequest& head) -> std::optional<ServerResponse> {
        if (head.header("x-secret") == "s") return std::nullopt;
        return ServerResponse::error(401, "wrong secret");
      });
      server_->set_shed_observer([this](const char* reason, const std::string&) {
        ++(std::string_view(reason) == "slow" ? slow : at_cap);
      });
      ASSERT_TRUE(server_->start().is_ok());
      port_ = server_->port();
    });
  }
  ~Listener() {
    io_.on_io([&] { server_.reset(); });
  }
  std::uint16_t port() const { return port_; }
  std::size_t open_sessions() {
    std::size_t n = 0;
    io_.on_io([&] { n = server_->open_sessions(); });
    return n;
  }

  std::atomic<int> slow{0};
  std::atomic<int> at_cap{0};

 private:
  IoThread io_;
  std::optional<HttpServer> server_;
  std::uint16_t port_ = 0;
};

const char* kAuthenticated =
    "POST /w HTTP/1.1\r\nHost: t\r\nx-secret: s\r\nContent-Length: 2\r\n\r\n{}";

// Apache's MinRate: a header or body that comes slower than
// min_request_rate after the grace is closed, a prompt request is served.
TEST(HttpServer, ClientsSlowerThanTheMinimumRateAreClosed) {
  HttpServerOptions options;
  options.min_request_rate = 100;
  options.min_rate_grace = 1000ms;
  options.rate_check_interval = 100ms;
  Listener listener(options);

  Raw slow_header(listener.port());
  ASSERT_TRUE(slow_header.send("POST /w HTTP/1.1\r\nHost: t\r\n"));
  Raw slow_body(listener.port());
  ASSERT_TRUE(slow_body.send(
      "POST /w HTTP/1.1\r\nHost: t\r\nx-secret: s\r\nContent-Length: 5000\r\n\r\n{\"a\":"));
  Raw prompt(listener.port());
  ASSERT_TRUE(prompt.send(kAuthenticated));
  EXPECT_EQ(prompt.status_line(), "HTTP/1.1 200 OK");

  EXPECT_EQ(slow_header.read_until_closed(), "");
  EXPECT_EQ(slow_body.read_until_closed(), "");
  EXPECT_EQ(listener.slow.load(), 2);
  // The prompt client's kept-alive connection is timed from its next
  // request's first byte, not closed for sending nothing meanwhile.
  ASSERT_TRUE(prompt.send(kAuthenticated));
  EXPECT_EQ(prompt.status_line(), "HTTP/1.1 200 OK");
  EXPECT_EQ(listener.slow.load(), 2);
}

// At max_connections the oldest connection whose head has not passed the
// head check makes room for a new one, so connections that never send (or
// never finish) a header cannot lock an authenticated sender out.
TEST(HttpServer, AtTheCapTheOldestUnauthenticatedConnectionMakesRoom) {
  HttpServerOptions options;
  options.max_connections = 3;
  options.min_request_rate = 0;  // only the cap at work here
  Listener listener(options);

  std::vector<std::unique_ptr<Raw>> trickling;
  for (int i = 0; i < 3; ++i) {
    trickling.push_back(std::make_unique<Raw>(listener.port()));
    ASSERT_TRUE(trickling.back()->send("POST /w HTTP/1.1\r\nHost: t\r\n"));
    ASSERT_TRUE(wait_until([&] { return listener.open_sessions() == trickling.size(); }));
  }
  Raw sender(listener.port());
  ASSERT_TRUE(sender.send(kAuthenticated));
  EXPECT_EQ(sender.status_line(), "HTTP/1.1 200 OK");
  EXPECT_EQ(trickling[0]->read_until_closed(), "");  // the oldest made room
  EXPECT_EQ(listener.at_cap.load(), 1);

  // The authenticated sender is never the one to go: the next newcomers
  // take the places of the remaining trickling connections, oldest first.
  Raw second(listener.port());
  ASSERT_TRUE(second.send(kAuthenticated));
  EXPECT_EQ(second.status_line(), "HTTP/1.1 200 OK");
  EXPECT_EQ(trickling[1]->read_until_closed(), "");
  ASSERT_TRUE(sender.send(kAuthenticated));
  EXPECT_EQ(sender.status_line(), "HTTP/1.1 200 OK");
  EXPECT_EQ(listener.at_cap.load(), 2);
}

// The class's promise: a session answers on its own once its handler
// responds, even when the server object is gone meanwhile (the io_context
// still runs), and goes on serving its connection. Under the sanitizers a
// session that referred into the destroyed server reads freed memory.
TEST(HttpServer, ASessionAnswersAfterTheServerIsDestroyed) {
  IoThread io;
  std::mutex mu;
  std::vector<Respond> pending;
  std::vector<std::string> targets;
  auto handler = [&](ServerRequest&& request, Respond respond) {
    std::lock_guard lock(mu);
    targets.push_back(request.target);
    pending.push_back(std::move(respond));
  };
  std::optional<HttpServer> server;
  std::uint16_t port = 0;
  io.on_io([&] {
    HttpServerOptions options;
    options.port = 0;
    server.emplace(io.ioc(), options, handler);
    server->set_head_check([](const ServerRequest&) { return std::optional<ServerResponse>{}; });
    ASSERT_TRUE(server->start().is_ok());
    port = server->port();
  });
  ASSERT_NE(port, 0);

  TestHttpClient client(port);
  auto first = std::async(std::launch::async, [&] { return client.post("/first", "{}"); });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return pending.size() == 1;
  }));
  io.on_io([&] { server.reset(); });
  io.on_io([] {});  // the cancelled accept has run: nothing holds the server's state
  Respond respond;
  {
    std::lock_guard lock(mu);
    respond = std::move(pending.front());
    pending.clear();
  }
  respond(ServerResponse::json(201, R"({"answered":"late"})"));
  respond = nullptr;
  const TestResponse answer = first.get();
  EXPECT_EQ(answer.status, 201) << answer.error;
  EXPECT_EQ(answer.body, R"({"answered":"late"})");

  // The connection is kept alive and still served by its session.
  auto second = std::async(std::launch::async, [&] { return client.post("/second", "{}"); });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return pending.size() == 1;
  }));
  {
    std::lock_guard lock(mu);
    respond = std::move(pending.front());
    pending.clear();
  }
  respond(ServerResponse::json(200, "{}"));
  respond = nullptr;
  EXPECT_EQ(second.get().status, 200);
  std::lock_guard lock(mu);
  EXPECT_EQ(targets, (std::vector<std::string>{"/first", "/second"}));
}

}  // namespace
}  // namespace runsync
