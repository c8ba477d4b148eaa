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

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/http/http_server.h"
#include "daemon/metrics.h"
#include "daemon/ingest/router.h"
#include "daemon/ingest/signature.h"
#include "daemon/ingest/webhook_endpoint.h"
#include "storage/writer.h"
#include "support/fake_clock.h"
#include "support/hostile_load.h"
#include "support/raw_connection.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::content_length;
using runsync::testing::RawConnection;
using runsync::testing::status_line;
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
                                                  *writer_, metrics_, logger_, clock_);
    router_ = std::make_unique<Router>("/webhook", *endpoint_, *writer_, metrics_, logger_);
    HttpServerOptions options = options_;
    options.port = 0;
    options.max_body_bytes = max_body;
    server_ = std::make_unique<HttpServer>(ioc_, options, [this](ServerRequest&& r, Respond respond) {
      router_->handle(std::move(r), std::move(respond));
    });
    server_->set_head_check([this](const ServerRequest& head) {
      return router_->answer_from_head(head);
    });
    server_->set_reject_observer([this](int status, const std::string&, const std::string&) {
      router_->count_response(status);
    });
    server_->set_accept_pause_observer([this](const std::string& error, std::chrono::milliseconds) {
      ++(error.empty() ? pauses_at_cap_ : accept_failures_);
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
  Logger logger_ = null_logger();
  HttpServerOptions options_;  // start() takes these, with port 0
  std::atomic<int> pauses_at_cap_{0};
  std::atomic<int> accept_failures_{0};
  // Stamps deliveries, checks signature ages and paces the endpoint's warnings.
  testing::FakeClock clock_{std::int64_t{1650540100} * 1000};
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<WebhookEndpoint> endpoint_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

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
  const std::string ts = std::to_string(clock_.unix_seconds());
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
  const std::string old_ts = std::to_string(clock_.unix_seconds() - 301);
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

// A POST to /webhook with these headers, announcing `length` body bytes.
std::string webhook_head(std::size_t length, const std::string& headers = "") {
  return "POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + headers +
         "Content-Length: " + std::to_string(length) + "\r\n\r\n";
}

// What the headers alone refuse is answered once the header is read: the
// client has sent no body yet and still gets its 401, and nothing of the
// body is waited for.
TEST_F(WebhookServerTest, RefusesByHeadersBeforeTheBody) {
  auto key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.is_ok());
  WebhookAuth auth;
  auth.secret = "s3cret";
  auth.signing_key = key.value();
  start(auth);
  const std::string ts = std::to_string(clock_.unix_seconds());
  const std::string old_ts = std::to_string(clock_.unix_seconds() - 301);
  const std::string good = "X-Qase-Secret: s3cret\r\n";
  for (const std::string& headers :
       {std::string(""), std::string("X-Qase-Secret: wrong\r\n"),
        good + "webhook-id: m1\r\nwebhook-timestamp: " + ts + "\r\n",
        good + "webhook-id: m1\r\nwebhook-timestamp: " + old_ts + "\r\nwebhook-signature: v1,x\r\n"}) {
    SCOPED_TRACE(headers);
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.send(webhook_head(1000000, headers));
    const std::string head = c.head();
    EXPECT_EQ(status_line(head), "HTTP/1.1 401 Unauthorized");
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
    c.take(content_length(head));
    EXPECT_TRUE(c.closed_by_server());
  }
  TestHttpClient client(server_->port());
  auto m = client.get("/metrics");
  EXPECT_NE(m.body.find(R"(runsync_webhook_events_total{event="unparsed",result="unauthorized"} 4)"),
            std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"(runsync_http_responses_total{code="401"} 4)"), std::string::npos);
  // Headers that pass still need the body: a bad signature is found there.
  const std::string sig = standard_webhook_signature(key.value(), "m2", ts, kStarted);
  EXPECT_EQ(client.post("/webhook", kStarted, {{"X-Qase-Secret", "s3cret"}, {"webhook-id", "m2"},
                                               {"webhook-timestamp", ts}, {"webhook-signature", "v1,bad"}})
                .status,
            401);
  EXPECT_EQ(client.post("/webhook", kStarted, {{"X-Qase-Secret", "s3cret"}, {"webhook-id", "m2"},
                                               {"webhook-timestamp", ts}, {"webhook-signature", sig}})
                .status,
            200);
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 1);
}

// A client that writes its whole body before reading (Python's
// http.client) reads the early answer: the server half-closes and reads
// and discards the rest rather than closing with bytes unread, which would
// reset the connection under the client.
TEST_F(WebhookServerTest, EarlyAnswersReachClientsThatSendTheWholeBodyFirst) {
  WebhookAuth auth;
  auth.secret = "s3cret";
  start(auth, 64 * 1024);
  const std::string body(8 * 1024 * 1024, 'x');
  struct Case {
    const char* name;
    std::string request;
    const char* status;
  };
  const std::string small(60 * 1024, ' ');
  const Case cases[] = {
      {"too large by Content-Length", webhook_head(body.size(), "X-Qase-Secret: s3cret\r\n") + body,
       "HTTP/1.1 413 Payload Too Large"},
      {"wrong secret", webhook_head(body.size() / 128, "X-Qase-Secret: nope\r\n") +
                           body.substr(0, body.size() / 128),
       "HTTP/1.1 401 Unauthorized"},
      {"too large, chunked",
       "POST /webhook HTTP/1.1\r\nHost: t\r\nX-Qase-Secret: s3cret\r\nTransfer-Encoding: chunked\r\n\r\n" +
           [&] {
             std::string chunks;
             for (int i = 0; i < 64; ++i) chunks += "20000\r\n" + body.substr(0, 0x20000) + "\r\n";
             return chunks + "0\r\n\r\n";
           }(),
       "HTTP/1.1 413 Payload Too Large"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.connected());
    EXPECT_TRUE(conn.send_all(c.request));
    const std::string head = conn.head();
    EXPECT_FALSE(conn.reset());
    EXPECT_EQ(status_line(head), c.status) << head;
    const std::size_t length = content_length(head);
    ASSERT_NE(length, std::string::npos);
    EXPECT_NE(conn.take(length).find("\"error\""), std::string::npos);
    EXPECT_TRUE(conn.closed_by_server());
  }
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 0);
}

// Chunk extensions and the trailer are part of neither the head nor the
// body: they are bounded by the header limit, so a client cannot make the
// listener hold more than that for them, and a well-formed chunked request
// with a few of each is still taken.
TEST_F(WebhookServerTest, ChunkExtensionsAndTrailersAreBounded) {
  start();
  const std::string head =
      "POST /webhook HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  {
    SCOPED_TRACE("small extensions and trailer");
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.connected());
    const std::string body = kStarted;
    std::ostringstream chunk;
    chunk << std::hex << body.size();
    conn.send(head + chunk.str() + ";name=value\r\n" + body + "\r\n0;last\r\nX-T: y\r\n\r\n");
    const std::string answer = conn.head();
    EXPECT_EQ(status_line(answer), "HTTP/1.1 200 OK") << answer;
  }
  std::string trailer;
  while (trailer.size() < 4 * 1024 * 1024) trailer += "X-T: y\r\n";
  std::string many_extensions;
  for (int i = 0; i < 64; ++i) many_extensions += "1;e=" + std::string(1000, 'v') + "\r\nx\r\n";
  struct Case {
    const char* name;
    std::string request;  // never finished: the answer must not wait for its end
  };
  const Case cases[] = {
      {"a trailer of 4 MiB", head + "1\r\nx\r\n0\r\n" + trailer},
      {"one extension of 4 MiB", head + "1;e=" + std::string(4 * 1024 * 1024, 'v')},
      {"64 chunks with 1 kB of extensions each", head + many_extensions},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.connected());
    EXPECT_TRUE(conn.send_all(c.request));
    const std::string answer = conn.head();
    EXPECT_EQ(status_line(answer), "HTTP/1.1 400 Bad Request") << answer;
    const std::size_t length = content_length(answer);
    ASSERT_NE(length, std::string::npos);
    EXPECT_NE(conn.take(length).find("16384 bytes"), std::string::npos);
  }
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 1);
}

// Eight clients sending 8 MiB trailers at once leave the peak resident size
// far below what the trailers add up to.
TEST_F(WebhookServerTest, HostileTrailersDoNotGrowMemory) {
  start();
  std::string request =
      "POST /webhook HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  while (request.size() < 8 * 1024 * 1024) request += "X-Trailer-Line: yyyyyyyy\r\n";
  ASSERT_TRUE(testing::reset_peak_rss(::getpid()));
  const long before_kb = testing::proc_status_kb(::getpid(), "VmRSS");
  std::vector<std::thread> clients;
  std::atomic<int> refused{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      RawConnection conn(server_->port());
      if (!conn.connected() || !conn.send_all(request)) return;
      if (status_line(conn.head()) == "HTTP/1.1 400 Bad Request") ++refused;
    });
  }
  for (auto& t : clients) t.join();
  const long peak_kb = testing::proc_status_kb(::getpid(), "VmHWM");
  ASSERT_GT(before_kb, 0);
  RecordProperty("peak_rss_growth_kb", std::to_string(peak_kb - before_kb));
  EXPECT_EQ(refused.load(), 8);
  // The requests are built once and shared; held trailers would add 64 MB.
  EXPECT_LT(peak_kb - before_kb, 16 * 1024) << "peak " << peak_kb << " kB, before " << before_kb;
}

// RFC 9112 §6: a request whose body length cannot be told is answered 400
// and the connection closed, so that what follows is never read as a
// request of its own.
TEST_F(WebhookServerTest, FramingErrorsAreAnswered400AndClose) {
  start();
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  struct Case {
    const char* name;
    std::string head;
    const char* status;
  };
  const Case cases[] = {
      {"last coding not chunked", "Transfer-Encoding: gzip\r\n", "HTTP/1.1 400 Bad Request"},
      {"chunked then another", "Transfer-Encoding: chunked, gzip\r\n", "HTTP/1.1 400 Bad Request"},
      {"chunked twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"gzip and Content-Length", "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"chunked and Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"Content-Length and chunked", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"bad Content-Length", "Content-Length: 5x\r\n", "HTTP/1.1 400 Bad Request"},
      {"two Content-Lengths", "Content-Length: 5\r\nContent-Length: 6\r\n",
       "HTTP/1.1 400 Bad Request"},
      {"a coding runsync cannot undo", "Transfer-Encoding: gzip, chunked\r\n",
       "HTTP/1.1 501 Not Implemented"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.connected());
    conn.send("POST /webhook HTTP/1.1\r\nHost: t\r\n" + c.head + "\r\n" + smuggled);
    const std::string head = conn.head();
    EXPECT_EQ(status_line(head), c.status) << head;
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
    conn.take(content_length(head));
    EXPECT_TRUE(conn.closed_by_server());
    EXPECT_EQ(conn.received().find("HTTP/1.1 200"), std::string::npos) << conn.received();
  }
  {
    SCOPED_TRACE("Transfer-Encoding in HTTP/1.0");
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.connected());
    conn.send("POST /webhook HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(status_line(conn.head()), "HTTP/1.0 400 Bad Request");
  }
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 0);
}

// Expect: 100-continue: "100 Continue" when the body will be read, else
// the final answer at once, before any body is sent.
TEST_F(WebhookServerTest, ExpectContinueIsHonoured) {
  WebhookAuth auth;
  auth.secret = "s3cret";
  start(auth, 2048);
  const std::string expect = "Expect: 100-continue\r\n";
  {
    SCOPED_TRACE("accepted: 100 Continue, then the body, then the answer");
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    c.send(webhook_head(std::strlen(kStarted), "X-Qase-Secret: s3cret\r\n" + expect));
    EXPECT_EQ(c.head(), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(kStarted);
    const std::string head = c.head();
    EXPECT_EQ(status_line(head), "HTTP/1.1 200 OK");
    EXPECT_EQ(c.take(content_length(head)), R"({"result":"applied"})");
  }
  struct Case {
    const char* name;
    std::string request;
    const char* status;
  };
  const Case refused[] = {
      {"wrong secret", webhook_head(100, "X-Qase-Secret: nope\r\n" + expect),
       "HTTP/1.1 401 Unauthorized"},
      {"too large", webhook_head(4096, "X-Qase-Secret: s3cret\r\n" + expect),
       "HTTP/1.1 413 Payload Too Large"},
      {"unknown path",
       "POST /elsewhere HTTP/1.1\r\nHost: t\r\n" + expect + "Content-Length: 100\r\n\r\n",
       "HTTP/1.1 404 Not Found"},
      {"wrong method", "PUT /webhook HTTP/1.1\r\nHost: t\r\n" + expect + "Content-Length: 100\r\n\r\n",
       "HTTP/1.1 405 Method Not Allowed"},
  };
  for (const Case& c : refused) {
    SCOPED_TRACE(c.name);
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.connected());
    conn.send(c.request);
    const std::string head = conn.head();
    EXPECT_EQ(status_line(head), c.status) << head;
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
  }
  EXPECT_EQ(count("SELECT count(*) FROM webhook_events"), 1);
}

// At max_connections, once every open connection has passed the head
// check (here: a webhook delivery, no secret configured), new connections
// wait in the backlog while the open ones are still served; one closing
// lets the next in. (A /healthz answered from its head passes no check.)
TEST_F(WebhookServerTest, ConnectionsBeyondTheCapWaitWhileOpenOnesAreServed) {
  options_.max_connections = 2;
  start();
  RawConnection first(server_->port());
  RawConnection second(server_->port());
  const std::string delivery =
      std::string("POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Length: ") +
      std::to_string(std::strlen(kStarted)) + "\r\n\r\n" + kStarted;
  for (RawConnection* c : {&first, &second}) {
    ASSERT_TRUE(c->connected());
    c->send(delivery);
    const std::string head = c->head();
    ASSERT_EQ(status_line(head), "HTTP/1.1 200 OK");
    c->take(content_length(head));
  }
  auto third = std::make_unique<RawConnection>(server_->port());
  ASSERT_TRUE(third->connected());  // the kernel's backlog takes it
  EXPECT_TRUE(wait_until([&] { return pauses_at_cap_.load() >= 1; }));
  third->send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_FALSE(third->answers_within(std::chrono::milliseconds(300)));
  EXPECT_EQ(server_->open_sessions(), 2u);
  first.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(status_line(first.head()), "HTTP/1.1 200 OK");
  second.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  const std::string closing = second.head();
  second.take(content_length(closing));
  EXPECT_TRUE(second.closed_by_server());
  EXPECT_EQ(status_line(third->head()), "HTTP/1.1 200 OK");
}

// When accept() fails for want of file descriptors the listener waits
// before trying again instead of failing in a loop, keeps serving the
// connections it has, and takes the waiting one once descriptors are free.
TEST_F(WebhookServerTest, AcceptBacksOffWhenOutOfFileDescriptors) {
  options_.accept_retry_delay = std::chrono::milliseconds(1500);
  start();
  RawConnection open_before(server_->port());
  ASSERT_TRUE(open_before.connected());
  open_before.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  open_before.take(content_length(open_before.head()));
  const int waiting = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(waiting, 0);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit lowered = saved;
  lowered.rlim_cur = std::min<rlim_t>(saved.rlim_cur, 4096);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  std::vector<int> hogs;
  for (int fd; (fd = ::dup(waiting)) >= 0;) hogs.push_back(fd);
  const int exhausted = errno;
  auto release = [&] {
    for (int fd : hogs) ::close(fd);
    hogs.clear();
    ::setrlimit(RLIMIT_NOFILE, &saved);
  };
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(waiting, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  const bool failed = wait_until([&] { return accept_failures_.load() >= 1; });
  const bool spun = wait_until([&] { return accept_failures_.load() >= 2; },
                               std::chrono::milliseconds(500));
  open_before.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string served = open_before.head();
  release();
  EXPECT_EQ(exhausted, EMFILE);
  EXPECT_TRUE(connected);
  EXPECT_TRUE(failed);
  EXPECT_FALSE(spun) << accept_failures_.load() << " failed accepts";
  EXPECT_EQ(status_line(served), "HTTP/1.1 200 OK");
  const std::string get = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_EQ(::send(waiting, get.data(), get.size(), MSG_NOSIGNAL), static_cast<ssize_t>(get.size()));
  timeval timeout{10, 0};
  ::setsockopt(waiting, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char answer[64] = {};
  EXPECT_GT(::recv(waiting, answer, sizeof answer - 1, 0), 0);
  EXPECT_EQ(std::string(answer).rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  ::close(waiting);
}

// Memory is bounded by the configuration, not by what clients send: many
// connections each sending a large body with a wrong secret leave the peak
// resident size (VmHWM, from /proc) far below what their bodies add up to,
// each gets its 401, and a normal client is answered all along. The full
// load (2,000 connections) is bench/listener_bench.cc.
TEST_F(WebhookServerTest, HostileBodiesDoNotGrowMemory) {
  WebhookAuth auth;
  auth.secret = "s3cret";
  start(auth);
  constexpr std::size_t kConnections = 300;
  constexpr std::size_t kBody = 1024 * 1024;
  std::atomic<bool> loading{true};
  std::atomic<int> normal_ok{0};
  std::atomic<int> normal_failed{0};
  std::thread normal([&] {
    TestHttpClient client(server_->port());
    while (loading) {
      auto r = client.get("/healthz");
      ++(r.status == 200 ? normal_ok : normal_failed);
    }
  });
  ASSERT_TRUE(testing::reset_peak_rss(::getpid()));
  const long before_kb = testing::proc_status_kb(::getpid(), "VmRSS");
  const auto result = testing::run_hostile_load(
      server_->port(), kConnections, webhook_head(kBody, "X-Qase-Secret: wrong\r\n"), kBody,
      std::chrono::seconds(60));
  const long peak_kb = testing::proc_status_kb(::getpid(), "VmHWM");
  loading = false;
  normal.join();
  ASSERT_GT(before_kb, 0);
  RecordProperty("peak_rss_growth_kb", std::to_string(peak_kb - before_kb));
  // Without the early refusal the bodies alone would add up to 300 MB.
  EXPECT_LT(peak_kb - before_kb, 48 * 1024) << "peak " << peak_kb << " kB, before " << before_kb;
  EXPECT_EQ(result.answered, kConnections);
  EXPECT_EQ(result.statuses.at(401), kConnections);
  EXPECT_EQ(result.reset, 0u);
  EXPECT_EQ(result.body_incomplete, 0u) << "each client sent its whole body";
  EXPECT_GT(normal_ok.load(), 0);
  EXPECT_EQ(normal_failed.load(), 0);
}

// Log lines quote what senders send, escaped: an event name with a newline
// cannot start a line of its own, at any level.
TEST_F(WebhookServerTest, SendersCannotForgeLogLines) {
  auto out = std::make_shared<std::ostringstream>();
  logger_ = make_logger(false, std::make_shared<spdlog::sinks::ostream_sink_mt>(*out));
  logger_->set_level(spdlog::level::trace);
  start();
  TestHttpClient client(server_->port());
  const std::string forged = "2026-01-01T00:00:00.000+0000 error database is gone";
  auto r = client.post("/webhook", R"({"event_name":"run.x\n)" + forged +
                                       R"(\r\u001b[31m","timestamp":1,"payload":{"id":7},"project_code":"ID"})");
  EXPECT_EQ(r.status, 200);
  logger_->flush();
  const std::string text = out->str();
  std::istringstream lines(text);
  int count_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    ++count_lines;
    EXPECT_EQ(line.rfind(forged, 0), std::string::npos) << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  }
  EXPECT_GE(count_lines, 1);
  EXPECT_NE(text.find("run.x\\n" + forged + "\\r\\x1b[31m"), std::string::npos) << text;
}

// A flood of refusals makes one warning per 10 s, then one saying how many
// were held back.
TEST_F(WebhookServerTest, RefusalWarningsAreRateLimited) {
  auto out = std::make_shared<std::ostringstream>();
  logger_ = make_logger(false, std::make_shared<spdlog::sinks::ostream_sink_mt>(*out));
  WebhookAuth auth;
  auth.secret = "s3cret";
  start(auth);
  TestHttpClient client(server_->port());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(client.post("/webhook", kStarted).status, 401);
  clock_.advance(std::chrono::seconds(11));
  EXPECT_EQ(client.post("/webhook", kStarted).status, 401);
  logger_->flush();
  const std::string text = out->str();
  std::istringstream lines(text);
  std::vector<std::string> warnings;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("refused (401)") != std::string::npos) warnings.push_back(line);
  }
  ASSERT_EQ(warnings.size(), 2u) << text;
  EXPECT_EQ(warnings[0].find("more in the last"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find(" (and 19 more in the last 11 s)"), std::string::npos) << warnings[1];
}

// A path that is not UTF-8 is quoted in the 404's JSON, not a failure.
TEST_F(WebhookServerTest, NonUtf8PathIsA404) {
  start();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  c.send("GET /\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string head = c.head();
  EXPECT_EQ(status_line(head), "HTTP/1.1 404 Not Found") << head;
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  c.take(content_length(head));
  EXPECT_EQ(status_line(c.head()), "HTTP/1.1 200 OK");
}

}  // namespace
}  // namespace runsync
