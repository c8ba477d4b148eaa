#include "daemon/http/http_client.h"

#include "daemon/http/base64.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>

namespace runsync {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr std::chrono::milliseconds kShutdownTimeout{1000};

// Why a certificate was not trusted, in the words an operator looks for,
// then OpenSSL's.
std::string verify_failure(long result) {
  const char* what = nullptr;
  switch (result) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      what = "unknown issuer";
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      what = "expired";
      break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      what = "not yet valid";
      break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      what = "host name mismatch";
      break;
    default:
      what = "not trusted";
  }
  return std::string(what) + " (" + X509_verify_cert_error_string(result) + ")";
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// An error of the connection itself, as when the server closed an idle
// keep-alive connection.
bool is_dead_connection(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

struct Connection {
  std::string host;
  bool tls = false;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  int requests = 0;  // requests completed on this connection
  std::chrono::steady_clock::time_point idle_since;

  beast::tcp_stream& lowest() { return tls ? secure->next_layer() : *plain; }
};

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

class HttpClient::Impl {
 public:
  explicit Impl(HttpClientOptions options) : options_(std::move(options)), resolver_(ioc_) {}

  ~Impl() {
    for (auto& [key, conn] : pool_) close(*conn, /*graceful=*/!cancelled_);
  }

  HttpResult send(const HttpRequest& request);

  // The TLS context, made on first use: loading the system CA store takes a
  // while and plain-http clients never need it.
  ssl::context& tls_context() {
    if (!ssl_ctx_) {
      ssl_ctx_ = std::make_unique<ssl::context>(ssl::context::tls_client);
      ssl_ctx_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
      SSL_CTX_set_min_proto_version(ssl_ctx_->native_handle(), TLS1_2_VERSION);
      error_code ec;
      ssl_ctx_->set_default_verify_paths(ec);  // an empty store only makes every peer fail
      if (!options_.extra_ca_pem.empty()) {
        ssl_ctx_->add_certificate_authority(asio::buffer(options_.extra_ca_pem), ec);
      }
      if (!options_.ca_file.empty()) {
        ssl_ctx_->load_verify_file(options_.ca_file, ec);
        if (ec) ca_file_error_ = "cannot load " + options_.ca_file + ": " + ec.message();
      }
      ssl_ctx_->set_verify_mode(ssl::verify_peer);
    }
    return *ssl_ctx_;
  }

  void cancel() {
    cancelled_ = true;
    asio::post(ioc_, [this] {
      resolver_.cancel();
      if (active_ != nullptr) active_->lowest().close();
    });
  }

  std::uint64_t connections_opened() const { return opened_; }

 private:
  struct Exchange {
    HttpResult result;
    bool dead_connection = false;  // failed as a connection the server had closed
  };

  // Runs the io_context until the operation just started has completed.
  void run() {
    ioc_.restart();
    ioc_.run();
  }

  HttpError make_error(error_code ec, HttpStage stage, const ParsedUrl& url, bool sent,
                       SteadyTime deadline) const {
    HttpError e;
    e.code = ec;
    e.stage = stage;
    e.may_have_been_sent = sent;
    e.cancelled = cancelled_;
    e.timed_out = !e.cancelled &&
                  (ec == beast::error::timeout || std::chrono::steady_clock::now() >= deadline);
    e.message = std::string(stage_name(stage)) + " " + url.host + ":" + url.port + ": " +
                (e.cancelled   ? std::string("cancelled")
                 : e.timed_out ? std::string("timed out")
                               : ec.message());
    return e;
  }

  error_code resolve(const ParsedUrl& url, SteadyTime deadline, tcp::resolver::results_type& out);
  std::unique_ptr<Connection> connect(const ParsedUrl& url, SteadyTime deadline,
                                      std::optional<HttpError>& error);
  Exchange exchange(Connection& conn, const ParsedUrl& url, const HttpRequest& request,
                    SteadyTime deadline);
  template <typename Stream>
  Exchange exchange_on(Stream& stream, Connection& conn, const ParsedUrl& url,
                       const HttpRequest& request, SteadyTime deadline);
  std::unique_ptr<Connection> take_pooled(const std::string& key);
  void close(Connection& conn, bool graceful);

  HttpClientOptions options_;
  asio::io_context ioc_;
  std::unique_ptr<ssl::context> ssl_ctx_;
  std::string ca_file_error_;  // set when options_.ca_file could not be loaded
  tcp::resolver resolver_;
  std::map<std::string, std::unique_ptr<Connection>> pool_;  // scheme://host:port → idle
  Connection* active_ = nullptr;  // the connection of the send() in progress
  std::atomic<bool> cancelled_{false};
  std::atomic<std::uint64_t> opened_{0};
};

error_code HttpClient::Impl::resolve(const ParsedUrl& url, SteadyTime deadline,
                                     tcp::resolver::results_type& out) {
  asio::steady_timer timer(ioc_);
  timer.expires_at(deadline);
  error_code result;
  bool done = false;
  bool timed_out = false;
  resolver_.async_resolve(url.host, url.port,
                          [&](error_code ec, tcp::resolver::results_type results) {
                            done = true;
                            result = ec;
                            out = std::move(results);
                            timer.cancel();
                          });
  timer.async_wait([&](error_code ec) {
    if (!ec && !done) {
      timed_out = true;
      resolver_.cancel();
    }
  });
  run();
  if (timed_out) return beast::error::timeout;
  return result;
}

std::unique_ptr<Connection> HttpClient::Impl::connect(const ParsedUrl& url, SteadyTime deadline,
                                                      std::optional<HttpError>& error) {
  tcp::resolver::results_type endpoints;
  if (error_code ec = resolve(url, deadline, endpoints); ec || cancelled_) {
    error = make_error(ec ? ec : asio::error::operation_aborted, HttpStage::kResolve, url, false,
                       deadline);
    return nullptr;
  }
  auto conn = std::make_unique<Connection>();
  conn->host = url.host;
  conn->tls = url.tls;
  if (url.tls) {
    conn->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc_, tls_context());
  } else {
    conn->plain = std::make_unique<beast::tcp_stream>(ioc_);
  }
  active_ = conn.get();
  error_code result;
  conn->lowest().expires_at(deadline);
  conn->lowest().async_connect(endpoints,
                               [&](error_code ec, const tcp::endpoint&) { result = ec; });
  run();
  if (result || cancelled_) {
    active_ = nullptr;
    error = make_error(result ? result : asio::error::operation_aborted, HttpStage::kConnect, url,
                       false, deadline);
    return nullptr;
  }
  ++opened_;
  error_code ignored;
  conn->lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (url.tls) {
    SSL* native = conn->secure->native_handle();
    if (!is_ip_literal(url.host) && !SSL_set_tlsext_host_name(native, url.host.c_str())) {
      active_ = nullptr;
      error =
          make_error(error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category()),
                     HttpStage::kTlsHandshake, url, false, deadline);
      return nullptr;
    }
    auto tls_failure = [&](error_code ec, std::string why) {
      active_ = nullptr;
      error = make_error(ec, HttpStage::kTlsHandshake, url, false, deadline);
      if (!why.empty()) {
        error->tls_verify_error = why;
        error->message += ": " + why;
      }
      return nullptr;
    };
    if (!ca_file_error_.empty()) {
      tls_failure(boost::system::errc::make_error_code(boost::system::errc::invalid_argument), "");
      error->tls_verify_error = ca_file_error_;
      error->message = std::string(stage_name(HttpStage::kTlsHandshake)) + " " + url.host + ":" +
                       url.port + ": " + ca_file_error_;
      return nullptr;
    }
    // OpenSSL's own check of the name (or address), so that a mismatch is
    // reported as one rather than as a bare verify failure.
    X509_VERIFY_PARAM* param = SSL_get0_param(native);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int named = is_ip_literal(url.host)
                          ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                          : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    if (named != 1) {
      return tls_failure(
          error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category()), "");
    }
    conn->secure->set_verify_mode(ssl::verify_peer);
    conn->lowest().expires_at(deadline);
    conn->secure->async_handshake(ssl::stream_base::client, [&](error_code ec) { result = ec; });
    run();
    if (result || cancelled_) {
      const long verified = SSL_get_verify_result(native);
      return tls_failure(
          result ? result : asio::error::operation_aborted,
          result && !cancelled_ && verified != X509_V_OK ? verify_failure(verified) : "");
    }
  }
  active_ = nullptr;
  return conn;
}

std::unique_ptr<Connection> HttpClient::Impl::take_pooled(const std::string& key) {
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

void HttpClient::Impl::close(Connection& conn, bool graceful) {
  error_code ec;
  if (conn.tls && graceful) {
    conn.lowest().expires_after(kShutdownTimeout);
    // stream_truncated (the server closed without close_notify) is harmless here.
    conn.secure->async_shutdown([](error_code) {});
    run();
  }
  conn.lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  conn.lowest().close();
}

template <typename Stream>
HttpClient::Impl::Exchange HttpClient::Impl::exchange_on(Stream& stream, Connection& conn,
                                                         const ParsedUrl& url,
                                                         const HttpRequest& request,
                                                         SteadyTime deadline) {
  Exchange out;
  const bool idempotent = request.method != "POST" && request.method != "PATCH";
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
  req.set(http::field::user_agent, options_.user_agent);
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

std::optional<std::string> ca_file_problem(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return std::string("cannot read ") + path + ": " + std::strerror(errno);
  int certificates = 0;
  while (X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr)) {
    ++certificates;
    X509_free(cert);
  }
  const unsigned long last = ERR_peek_last_error();
  ERR_clear_error();
  std::fclose(file);
  const bool clean_end = last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM &&
                                       ERR_GET_REASON(last) == PEM_R_NO_START_LINE);
  if (certificates == 0) return path + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
  if (!clean_end) {
    return path + ": certificate " + std::to_string(certificates + 1) +
           " cannot be parsed: " + ERR_reason_error_string(last);
  }
  return std::nullopt;
}

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

namespace {

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

std::optional<int> digits(std::string_view s) {
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

std::optional<std::int64_t> parse_http_date(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  if (text.size() != 29 || text.substr(3, 2) != ", " || text[7] != ' ' || text[11] != ' ' ||
      text[16] != ' ' || text[19] != ':' || text[22] != ':' || text.substr(25) != " GMT") {
    return std::nullopt;
  }
  const auto day_name = text.substr(0, 3);
  bool day_ok = false;
  for (auto d : kDays) day_ok = day_ok || d == day_name;
  if (!day_ok) return std::nullopt;
  unsigned month = 0;
  for (unsigned i = 0; i < kMonths.size(); ++i) {
    if (kMonths[i] == text.substr(8, 3)) month = i + 1;
  }
  const auto day = digits(text.substr(5, 2));
  const auto year = digits(text.substr(12, 4));
  const auto hour = digits(text.substr(17, 2));
  const auto minute = digits(text.substr(20, 2));
  const auto second = digits(text.substr(23, 2));
  if (month == 0 || !day || !year || !hour || !minute || !second) return std::nullopt;
  if (*day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  return days_from_civil(*year, month, static_cast<unsigned>(*day)) * 86400 + *hour * 3600 +
         *minute * 60 + *second;
}

std::string format_http_date(std::int64_t unix_seconds) {
  std::int64_t days = unix_seconds / 86400;
  std::int64_t rem = unix_seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  std::int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civil_from_days(days, y, m, d);
  const auto weekday = static_cast<std::size_t>(((days % 7) + 11) % 7);  // 1970-01-01: Thursday
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02lld:%02lld:%02lld GMT",
                std::string(kDays[weekday]).c_str(), d, std::string(kMonths[m - 1]).c_str(),
                static_cast<long long>(y), static_cast<long long>(rem / 3600),
                static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
  return buf;
}

}  // namespace runsync
