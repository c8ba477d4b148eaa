// The webhook listener over real HTTP on loopback (port 0): router,
// endpoint, writer and a real SQLite file.
#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "daemon/http_server.h"
#include "daemon/metrics.h"
#include "daemon/router.h"
#include "daemon/signature.h"
#include "daemon/webhook_endpoint.h"
#include "storage/writer.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;
using runsync::testing::TestHttpClient;
using runsync::testing::wait_until;

const char* kStarted =
    R"({"event_name":"run.started","timestamp":1650540069,"payload":{"id":1,"title":"Test run","description":null,"plan":{"id":3,"title":"d"},"cases_count":14,"environment":null},"team_member_id":40,"project_code":"ID"})";

class WebhookServerTest : public ::testing::Test {
 protected:
  void start(WebhookAuth auth = {}, std::uint64_t max_body = 1048576,
             Writer::Options writer_options = {}) {
    auto store = Store::open(dir_.file("mirror.db"), OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    writer_ = std::make_unique<Writer>(std::move(store).value(), writer_options);
    endpoint_ = std::make_unique<WebhookEndpoint>(std::move(auth),
                                                  std::map<std::string, std::int64_t>{{"ID", 1}},
                                                  *writer_, metrics_, null_logger(),
                                                  [this] { return now_.load(); });
    router_ = std::make_unique<Router>("/webhook", *endpoint_, *writer_, metrics_, null_logger(),
                                       Router::ReadinessCheck{});
    HttpServerOptions options;
    options.port = 0;
    options.max_body_bytes = max_body;
    server_ = std::make_unique<HttpServer>(ioc_, options, [this](ServerRequest&& r, Respond respond) {
      router_->handle(std::move(r), std::move(respond));
    });
    ASSERT_TRUE(server_->start().is_ok());
    thread_ = std::thread([this] { ioc_.run(); });
  }

  void TearDown() override {
    if (server_) {
      std::promise<void> stopped;
      boost::asio::post(ioc_, [&] {
        server_->stop_accepting();
        server_->close_sessions();
        stopped.set_value();
      });
      stopped.get_future().wait();
    }
    if (writer_) writer_->stop();
    work_.reset();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::int64_t count(const std::string& sql) {
    SQLite::Database db(dir_.file("mirror.db"), SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }

  TempDir dir_;
  Metrics metrics_;
  std::atomic<std::int64_t> now_{1650540100};
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<WebhookEndpoint> endpoint_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// A raw connection to the server: what the test client's HTTP library
// would hide (the status line's version, Connection headers, the bytes
// after a HEAD answer's headers, the server closing).
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
  // Reads until `received()` holds `n` bytes or the server closes (true).
  bool read_at_least(std::size_t n) {
    char chunk[4096];
    while (received_.size() < n) {
      const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got <= 0) return got == 0;
      received_.append(chunk, static_cast<std::size_t>(got));
    }
    return false;
  }
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
  std::string received_;
};

std::size_t content_length(const std::string& head) {
  const auto at = head.find("Content-Length: ");
  if (at == std::string::npos) return std::string::npos;
  return std::stoul(head.substr(at + 16));
}

TEST_F(WebhookServerTest, AnswersAsHttpSaysForVersionsHeadAndClose) {
  start();
  {
    SCOPED_TRACE("HTTP/1.0 without keep-alive: a 1.0 answer, then the server closes");
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.send("GET /healthz HTTP/1.0\r\n\r\n");
    const std::string head = c.head();
    EXPECT_EQ(head.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << head;
    EXPECT_EQ(head.find("Connection:"), std::string::npos) << head;
    EXPECT_NE(head.find("Server: runsync\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("Content-Type: application/json\r\n"), std::string::npos) << head;
    const std::size_t length = content_length(head);
    ASSERT_NE(length, std::string::npos) << head;
    EXPECT_EQ(c.take(length).size(), length);
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    SCOPED_TRACE("HTTP/1.0 with keep-alive: said so, and a second request is answered");
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    for (int i = 0; i < 2; ++i) {
      c.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      const std::string head = c.head();
      EXPECT_EQ(head.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << head;
      EXPECT_NE(head.find("Connection: keep-alive\r\n"), std::string::npos) << head;
      c.take(content_length(head));
    }
  }
  {
    SCOPED_TRACE("HEAD: the length of the GET body, no body; the next answer follows at once");
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    const std::string get_head = c.head();
    const std::size_t get_length = content_length(get_head);
    ASSERT_NE(get_length, std::string::npos);
    ASSERT_GT(get_length, 0u);
    c.take(get_length);
    c.send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    const std::string head = c.head();
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
    EXPECT_EQ(content_length(head), get_length) << head;
    const std::string next = c.head();
    EXPECT_EQ(next.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << next;
  }
  {
    SCOPED_TRACE("HTTP/1.1 Connection: close: said so, then the server closes");
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.send("POST /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    const std::string head = c.head();
    EXPECT_EQ(head.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << head;
    EXPECT_NE(head.find("Allow: GET, HEAD\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
    c.take(content_length(head));
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST_F(WebhookServerTest, AppliesThenAcknowledgesDuplicatesOverOneKeepAliveConnection) {
  start();
  TestHttpClient client(server_->port());
  auto first = client.post("/webhook", kStarted);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, R"({"result":"applied"})");
  // Durable before the answer: another connection sees it at once.
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE run_id = 1 AND project_id = 1"), 1);
  auto again = client.post("/webhook", kStarted);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, R"({"result":"duplicate"})");
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM run_changes"), 1);
}

// Answers of one batch reach the I/O thread together; each must still go to
// the connection that asked. Every client posts its own events, each twice:
// an answer crossed to another connection would read "duplicate" for a first
// delivery or "applied" for a second.
TEST_F(WebhookServerTest, ConcurrentClientsEachGetTheirOwnAnswers) {
  start();
  constexpr int kClients = 16;
  constexpr int kEvents = 12;
  std::vector<std::string> wrong(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TestHttpClient client(server_->port());
      for (int e = 0; e < kEvents; ++e) {
        const std::string body = R"({"event_name":"run.started","timestamp":1650540069,)"
                                 R"("payload":{"id":)" + std::to_string(1000 + c * kEvents + e) +
                                 R"(},"project_code":"ID"})";
        for (const char* expected : {R"({"result":"applied"})", R"({"result":"duplicate"})"}) {
          auto answer = client.post("/webhook", body);
          if (answer.status != 200 || answer.body != expected) {
            wrong[c] += "event " + std::to_string(e) + ": " + std::to_string(answer.status) +
                        " " + answer.body + " (expected " + expected + "); ";
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(wrong[c], "") << "client " << c;
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), kClients * kEvents);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), kClients * kEvents);
}

TEST_F(WebhookServerTest, StaleAndIgnoredResults) {
  start();
  TestHttpClient client(server_->port());
  EXPECT_EQ(client.post("/webhook", R"({"event_name":"run.completed","timestamp":200,"payload":{"id":4,"passed":2},"project_code":"ID"})").body,
            R"({"result":"applied"})");
  EXPECT_EQ(client.post("/webhook", R"({"event_name":"run.completed","timestamp":100,"payload":{"id":4,"passed":1},"project_code":"ID"})").body,
            R"({"result":"stale"})");
  EXPECT_EQ(client.post("/webhook", R"({"event_name":"defect.created","timestamp":100,"payload":{"id":4},"project_code":"ID"})").body,
            R"({"result":"ignored"})");
  EXPECT_EQ(count("SELECT passed_count FROM runs WHERE run_id = 4"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events WHERE result = 'ignored'"), 1);
}

TEST_F(WebhookServerTest, BadInputIsRefusedAndChangesNothing) {
  start({}, 2048);
  TestHttpClient client(server_->port());
  auto not_json = client.post("/webhook", "{nope");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_NE(not_json.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(client.post("/webhook", R"({"event_name":"run.deleted","timestamp":1,"payload":{},"project_code":"ID"})").status, 400);
  EXPECT_EQ(client.get("/webhook").status, 405);
  auto put = client.request("PUT", "/webhook", kStarted);
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.header("Allow"), "POST");
  EXPECT_EQ(client.post("/elsewhere", kStarted).status, 404);
  EXPECT_EQ(client.get("/healthz").status, 200);
  EXPECT_EQ(client.get("/readyz").status, 200);
  TestHttpClient big(server_->port());
  auto too_large = big.post("/webhook", std::string(4096, ' ') + kStarted);
  EXPECT_EQ(too_large.status, 413);
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 0);
}

TEST_F(WebhookServerTest, SharedSecretIsRequiredWhenConfigured) {
  WebhookAuth auth;
  auth.secret = "s3cret";
  start(auth);
  TestHttpClient client(server_->port());
  EXPECT_EQ(client.post("/webhook", kStarted).status, 401);
  EXPECT_EQ(client.post("/webhook", kStarted, {{"X-Qase-Secret", "wrong"}}).status, 401);
  EXPECT_EQ(client.post("/webhook", kStarted, {{"X-Qase-Secret", "s3cret"}}).status, 200);
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 1);
}

TEST_F(WebhookServerTest, StandardWebhooksSignatureAndIdDedupe) {
  auto key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.is_ok());
  WebhookAuth auth;
  auth.signing_key = key.value();
  start(auth);
  const std::string ts = std::to_string(now_.load());
  const std::string sig = standard_webhook_signature(key.value(), "msg_1", ts, kStarted);
  TestHttpClient client(server_->port());
  auto ok = client.post("/webhook", kStarted,
                        {{"webhook-id", "msg_1"}, {"webhook-timestamp", ts}, {"webhook-signature", "v1,bogus " + sig}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  // The same webhook-id with other bytes is the same delivery.
  const std::string other = std::string(kStarted) + " ";
  auto dup = client.post("/webhook", other,
                         {{"webhook-id", "msg_1"}, {"webhook-timestamp", ts},
                          {"webhook-signature", standard_webhook_signature(key.value(), "msg_1", ts, other)}});
  EXPECT_EQ(dup.body, R"({"result":"duplicate"})");
  auto bad = client.post("/webhook", kStarted,
                         {{"webhook-id", "msg_2"}, {"webhook-timestamp", ts}, {"webhook-signature", sig}});
  EXPECT_EQ(bad.status, 401);
  const std::string old_ts = std::to_string(now_.load() - 301);
  auto old = client.post("/webhook", kStarted,
                         {{"webhook-id", "msg_3"}, {"webhook-timestamp", old_ts},
                          {"webhook-signature", standard_webhook_signature(key.value(), "msg_3", old_ts, kStarted)}});
  EXPECT_EQ(old.status, 401);
  EXPECT_EQ(client.post("/webhook", kStarted).status, 401);
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 1);
}

TEST_F(WebhookServerTest, FullQueueAnswers503WithRetryAfter) {
  Writer::Options options;
  options.queue_capacity = 1;
  options.max_batch = 1;
  start({}, 1048576, options);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> blocked{false};
  ASSERT_TRUE(writer_->try_submit([&, gate](Store&) { blocked = true; gate.wait(); return Status::ok(); },
                                  [](const Status&) {}));
  ASSERT_TRUE(wait_until([&] { return blocked.load(); }));
  ASSERT_TRUE(writer_->try_submit([](Store&) { return Status::ok(); }, [](const Status&) {}));
  TestHttpClient client(server_->port());
  auto busy = client.post("/webhook", kStarted);
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("Retry-After"), "1");
  release.set_value();
  EXPECT_TRUE(wait_until([&] { return writer_->depth() == 0; }));
  EXPECT_EQ(client.post("/webhook", kStarted).status, 200);
}

TEST_F(WebhookServerTest, MetricsCountEventsAndResponses) {
  start();
  TestHttpClient client(server_->port());
  client.post("/webhook", kStarted);
  client.post("/webhook", kStarted);
  client.post("/webhook", "x");
  auto m = client.get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.header("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(m.body.find(R"(runsync_webhook_events_total{event="run.started",result="applied"} 1)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"(runsync_webhook_events_total{event="run.started",result="duplicate"} 1)"), std::string::npos);
  EXPECT_NE(m.body.find(R"(runsync_http_responses_total{code="400"} 1)"), std::string::npos);
}

TEST(Signature, StandardWebhooksTestVector) {
  auto key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.is_ok());
  EXPECT_EQ(standard_webhook_signature(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                       R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_TRUE(verify_standard_webhook(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                      R"({"test": 2432232314})", 1614265330 + 10)
                  .is_ok());
  EXPECT_FALSE(verify_standard_webhook(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                       "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                       R"({"test": 2432232315})", 1614265330)
                   .is_ok());
  EXPECT_FALSE(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
  EXPECT_FALSE(SigningKey::parse("whsec_!!!").is_ok());
}

// The MAC context a thread keeps is keyed again when the key changes (a
// reload) and reused while it does not.
TEST(Signature, TheMacFollowsTheKeyAcrossCalls) {
  auto a = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  auto b = SigningKey::parse("whsec_c2VjcmV0LWtleS1iCg==");
  ASSERT_TRUE(a.is_ok());
  ASSERT_TRUE(b.is_ok());
  const char* kA = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  // Python's hmac over the same content with key b ("secret-key-b\n").
  const std::string b_sig = "v1,pc84RjfJdIq3GYRMVy3ZxVBEmAoKhjmt5BKMlREtc8A=";
  for (int i = 0; i < 2; ++i) {
    for (const SigningKey* key : {&a.value(), &a.value(), &b.value(), &a.value()}) {
      EXPECT_EQ(standard_webhook_signature(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                           R"({"test": 2432232314})"),
                key == &a.value() ? std::string(kA) : b_sig);
    }
  }
  // Another thread, its own context: the same answers.
  std::async(std::launch::async, [&] {
    EXPECT_EQ(standard_webhook_signature(b.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                         R"({"test": 2432232314})"),
              b_sig);
    EXPECT_EQ(standard_webhook_signature(a.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                         R"({"test": 2432232314})"),
              kA);
  }).get();
}

TEST(Signature, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "ab"));
}

// The body hash that keys deliveries without a webhook-id: FIPS 180-2's
// vectors, and the same answer again from the thread's reused context.
TEST(Signature, Sha256Hex) {
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(HostPort, Splits) {
  EXPECT_EQ(split_host_port("127.0.0.1:8080")->second, 8080);
  EXPECT_EQ(split_host_port("[::1]:0")->first, "::1");
  EXPECT_FALSE(split_host_port("localhost").has_value());
  EXPECT_FALSE(split_host_port("h:99999").has_value());
}

}  // namespace
}  // namespace runsync
