// HttpClient (http_client.h): the pool of kept-alive connections, sending a
// request and reading its response, and the one retry on a fresh connection
// when a reused one turns out dead; parse_url. Opening connections is
// http_connect.cc's, the HTTP dates http_date.cc's.
#include "daemon/http/http_client.h"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <charconv>

#include "daemon/http/base64.h"
#include "daemon/http/http_client_impl.h"

namespace runsync {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// An error of the connection itself, as when the server closed an idle
// keep-alive connection.
bool is_dead_connection(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

// The request as sent: `request` with the headers the client sets.
http::request<http::string_body> make_request(const HttpRequest& request, const ParsedUrl& url,
                                              const std::string& user_agent) {
  http::request<http::string_body> req;
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    req.method_string(request.method);
  } else {
    req.method(verb);
  }
  req.target(url.target);
  req.version(11);
  const bool default_port = url.port == (url.tls ? "443" : "80");
  const std::string host =
      (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) +
      (default_port ? "" : ":" + url.port);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, user_agent);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "application/json");
  if (request.basic_auth) {
    req.set(http::field::authorization,
            "Basic " + base64_encode(request.basic_auth->first + ":" + request.basic_auth->second));
  }
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.keep_alive(true);
  req.body() = request.body;
  req.prepare_payload();
  if (verb == http::verb::post && request.body.empty()) req.content_length(0);
  return req;
}

}  // namespace

const char* stage_name(HttpStage stage) {
  switch (stage) {
    case HttpStage::kUrl:
      return "url";
    case HttpStage::kResolve:
      return "resolve";
    case HttpStage::kConnect:
      return "connect";
    case HttpStage::kTlsHandshake:
      return "tls handshake";
    case HttpStage::kWrite:
      return "write";
    case HttpStage::kRead:
      return "read";
  }
  return "?";
}

HttpError HttpClient::Impl::make_error(error_code ec, HttpStage stage, const ParsedUrl& url,
                                       bool sent, SteadyTime deadline) const {
  HttpError e;
  e.code = ec;
  e.stage = stage;
  e.may_have_been_sent = sent;
  e.cancelled = cancelled_;
  e.timed_out =
      !e.cancelled && (ec == beast::error::timeout || std::chrono::steady_clock::now() >= deadline);
  e.message = std::string(stage_name(stage)) + " " + url.host + ":" + url.port + ": " +
              (e.cancelled   ? std::string("cancelled")
               : e.timed_out ? std::string("timed out")
                             : ec.message());
  return e;
}

void HttpClient::Impl::cancel() {
  cancelled_ = true;
  asio::post(ioc_, [this] {
    resolver_.cancel();
    if (active_ != nullptr) active_->lowest().close();
  });
}

auto HttpClient::Impl::take_pooled(const std::string& key) -> std::unique_ptr<Connection> {
  auto it = pool_.find(key);
  if (it == pool_.end()) return nullptr;
  std::unique_ptr<Connection> conn = std::move(it->second);
  pool_.erase(it);
  if (std::chrono::steady_clock::now() - conn->idle_since > options_.max_idle) {
    close(*conn, /*graceful=*/false);
    return nullptr;
  }
  // A server that closed the connection while it was idle has sent EOF (or a
  // TLS close_notify): anything readable now means it is no longer usable.
  auto& socket = conn->lowest().socket();
  error_code ec;
  socket.non_blocking(true, ec);
  char byte = 0;
  const std::size_t n = socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
  const bool alive = ec == asio::error::would_block && n == 0 && conn->buffer.size() == 0;
  socket.non_blocking(false, ec);
  if (!alive) {
    close(*conn, /*graceful=*/false);
    return nullptr;
  }
  return conn;
}

template <typename Stream>
HttpClient::Impl::Exchange HttpClient::Impl::exchange_on(Stream& stream, Connection& conn,
                                                         const ParsedUrl& url,
                                                         const HttpRequest& request,
                                                         SteadyTime deadline) {
  Exchange out;
  const bool idempotent = request.method != "POST" && request.method != "PATCH";
  http::request<http::string_body> req = make_request(request, url, options_.user_agent);

  error_code result;
  std::size_t written = 0;
  conn.lowest().expires_at(deadline);
  http::async_write(stream, req, [&](error_code ec, std::size_t n) {
    result = ec;
    written = n;
  });
  run();
  if (result || cancelled_) {
    out.result.error = make_error(result ? result : asio::error::operation_aborted,
                                  HttpStage::kWrite, url, written > 0, deadline);
    out.dead_connection = !cancelled_ && result != beast::error::timeout;
    return out;
  }

  http::response_parser<http::string_body> parser;
  parser.body_limit(options_.body_limit);
  parser.header_limit(64 * 1024);
  conn.lowest().expires_at(deadline);
  // Beast reads at most the buffer's free capacity (512 bytes when it
  // starts empty): an API page should take a few reads, not hundreds.
  constexpr std::size_t kReadBufferBytes = 64 * 1024;
  if (conn.buffer.capacity() < kReadBufferBytes) conn.buffer.reserve(kReadBufferBytes);
  http::async_read(stream, conn.buffer, parser, [&](error_code ec, std::size_t) { result = ec; });
  run();
  if (result || cancelled_) {
    out.result.error = make_error(result ? result : asio::error::operation_aborted,
                                  HttpStage::kRead, url, true, deadline);
    // Only for idempotent methods: a POST the server read and then dropped
    // the connection on may have been applied (SPEC §7).
    out.dead_connection = idempotent && !cancelled_ && !parser.got_some() &&
                          conn.buffer.size() == 0 && is_dead_connection(result);
    return out;
  }
  auto& res = parser.get();
  HttpResponse& r = out.result.response;
  r.status = static_cast<int>(res.result_int());
  r.date = std::string(res[http::field::date]);
  r.retry_after = std::string(res[http::field::retry_after]);
  r.content_type = std::string(res[http::field::content_type]);
  r.body = std::move(res.body());
  ++conn.requests;
  if (!res.keep_alive()) out.dead_connection = true;  // reported ok; just not reusable
  return out;
}

HttpClient::Impl::Exchange HttpClient::Impl::exchange(Connection& conn, const ParsedUrl& url,
                                                      const HttpRequest& request,
                                                      SteadyTime deadline) {
  active_ = &conn;
  Exchange out = conn.tls ? exchange_on(*conn.secure, conn, url, request, deadline)
                          : exchange_on(*conn.plain, conn, url, request, deadline);
  active_ = nullptr;
  return out;
}

HttpResult HttpClient::Impl::send(const HttpRequest& request) {
  HttpResult result;
  const auto deadline =
      std::chrono::steady_clock::now() + request.timeout.value_or(options_.timeout);
  auto url = parse_url(request.url);
  if (!url) {
    HttpError e;
    e.code = std::make_error_code(std::errc::invalid_argument);
    e.stage = HttpStage::kUrl;
    e.message = "url: not an absolute http(s) URL: " + request.url;
    result.error = std::move(e);
    return result;
  }
  if (cancelled_) {
    result.error =
        make_error(asio::error::operation_aborted, HttpStage::kConnect, *url, false, deadline);
    return result;
  }
  const std::string key = (url->tls ? "https://" : "http://") + url->host + ":" + url->port;
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Connection> conn = take_pooled(key);
    const bool reused = conn != nullptr;
    if (!conn) {
      conn = connect(*url, deadline, result.error);
      if (!conn) return result;
    }
    Exchange ex = exchange(*conn, *url, request, deadline);
    if (ex.result.ok()) {
      if (ex.dead_connection) {
        close(*conn, /*graceful=*/false);  // the server closes it
      } else {
        conn->idle_since = std::chrono::steady_clock::now();
        pool_[key] = std::move(conn);
      }
      return std::move(ex.result);
    }
    close(*conn, /*graceful=*/false);
    const bool retry = reused && attempt == 0 && ex.dead_connection && !cancelled_ &&
                       std::chrono::steady_clock::now() < deadline;
    if (!retry) return std::move(ex.result);
  }
}

HttpClient::HttpClient(HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;
HttpResult HttpClient::send(const HttpRequest& request) { return impl_->send(request); }
void HttpClient::cancel() { impl_->cancel(); }
std::uint64_t HttpClient::connections_opened() const { return impl_->connections_opened(); }

std::optional<ParsedUrl> parse_url(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return std::nullopt;
  const boost::urls::url_view& url = *parsed;
  ParsedUrl out;
  if (url.scheme_id() == boost::urls::scheme::https) {
    out.tls = true;
  } else if (url.scheme_id() != boost::urls::scheme::http) {
    return std::nullopt;
  }
  if (url.has_userinfo()) return std::nullopt;
  out.host = url.host_type() == boost::urls::host_type::ipv6
                 ? url.host_ipv6_address().to_string()
                 : std::string(url.encoded_host());
  if (out.host.empty()) return std::nullopt;
  const std::string_view port = url.port();
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else {
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) {
      return std::nullopt;
    }
    out.port = std::string(port);
  }
  out.target = url.encoded_path().empty() ? "/" : std::string(url.encoded_path());
  if (url.has_query()) out.target += "?" + std::string(url.encoded_query());
  return out;
}

}  // namespace runsync
