// The HTTP listener on its own (no router): how sessions live and die.
#include "daemon/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
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

#include "support/raw_connection.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace std::chrono_literals;
using runsync::testing::RawConnection;
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

  RawConnection slow_header(listener.port());
  ASSERT_TRUE(slow_header.send_all("POST /w HTTP/1.1\r\nHost: t\r\n"));
  RawConnection slow_body(listener.port());
  ASSERT_TRUE(slow_body.send_all(
      "POST /w HTTP/1.1\r\nHost: t\r\nx-secret: s\r\nContent-Length: 5000\r\n\r\n{\"a\":"));
  RawConnection prompt(listener.port());
  ASSERT_TRUE(prompt.send_all(kAuthenticated));
  EXPECT_EQ(prompt.answer_status(), "HTTP/1.1 200 OK");

  EXPECT_EQ(slow_header.read_until_closed(), "");
  EXPECT_EQ(slow_body.read_until_closed(), "");
  EXPECT_EQ(listener.slow.load(), 2);
  // The prompt client's kept-alive connection is timed from its next
  // request's first byte, not closed for sending nothing meanwhile.
  ASSERT_TRUE(prompt.send_all(kAuthenticated));
  EXPECT_EQ(prompt.answer_status(), "HTTP/1.1 200 OK");
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

  std::vector<std::unique_ptr<RawConnection>> trickling;
  for (int i = 0; i < 3; ++i) {
    trickling.push_back(std::make_unique<RawConnection>(listener.port()));
    ASSERT_TRUE(trickling.back()->send_all("POST /w HTTP/1.1\r\nHost: t\r\n"));
    ASSERT_TRUE(wait_until([&] { return listener.open_sessions() == trickling.size(); }));
  }
  RawConnection sender(listener.port());
  ASSERT_TRUE(sender.send_all(kAuthenticated));
  EXPECT_EQ(sender.answer_status(), "HTTP/1.1 200 OK");
  EXPECT_EQ(trickling[0]->read_until_closed(), "");  // the oldest made room
  EXPECT_EQ(listener.at_cap.load(), 1);

  // The authenticated sender is never the one to go: the next newcomers
  // take the places of the remaining trickling connections, oldest first.
  RawConnection second(listener.port());
  ASSERT_TRUE(second.send_all(kAuthenticated));
  EXPECT_EQ(second.answer_status(), "HTTP/1.1 200 OK");
  EXPECT_EQ(trickling[1]->read_until_closed(), "");
  ASSERT_TRUE(sender.send_all(kAuthenticated));
  EXPECT_EQ(sender.answer_status(), "HTTP/1.1 200 OK");
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

TEST(OpenFileLimit, RaisesTheSoftLimitToTheHardOne) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit lowered = saved;
  lowered.rlim_cur = std::min<rlim_t>(saved.rlim_max, 512);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  const OpenFileLimit limit = raise_open_file_limit();
  rlimit now{};
  ::getrlimit(RLIMIT_NOFILE, &now);
  ::setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_EQ(limit.error, "");
  EXPECT_EQ(limit.hard, saved.rlim_max);
  EXPECT_EQ(limit.soft, saved.rlim_max);
  EXPECT_EQ(now.rlim_cur, saved.rlim_max);
}

}  // namespace
}  // namespace runsync
