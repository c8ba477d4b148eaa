// Opening HttpClient's connections (http_client_impl.h): resolving the host,
// the TCP connect and the TLS handshake, each under the request's deadline;
// whom TLS trusts (the system store, extra_ca_pem, ca_file) and how a
// certificate it refuses is reported; closing a connection.
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "daemon/http/http_client_impl.h"

namespace runsync {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

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

}  // namespace

ssl::context& HttpClient::Impl::tls_context() {
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

auto HttpClient::Impl::connect(const ParsedUrl& url, SteadyTime deadline,
                               std::optional<HttpError>& error) -> std::unique_ptr<Connection> {
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
  if (url.tls && !handshake(*conn, url, deadline, error)) return nullptr;
  active_ = nullptr;
  return conn;
}

bool HttpClient::Impl::handshake(Connection& conn, const ParsedUrl& url, SteadyTime deadline,
                                 std::optional<HttpError>& error) {
  error_code result;
  SSL* native = conn.secure->native_handle();
  if (!is_ip_literal(url.host) && !SSL_set_tlsext_host_name(native, url.host.c_str())) {
    active_ = nullptr;
    error =
        make_error(error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category()),
                   HttpStage::kTlsHandshake, url, false, deadline);
    return false;
  }
  auto tls_failure = [&](error_code ec, std::string why) {
    active_ = nullptr;
    error = make_error(ec, HttpStage::kTlsHandshake, url, false, deadline);
    if (!why.empty()) {
      error->tls_verify_error = why;
      error->message += ": " + why;
    }
    return false;
  };
  if (!ca_file_error_.empty()) {
    tls_failure(boost::system::errc::make_error_code(boost::system::errc::invalid_argument), "");
    error->tls_verify_error = ca_file_error_;
    error->message = std::string(stage_name(HttpStage::kTlsHandshake)) + " " + url.host + ":" +
                     url.port + ": " + ca_file_error_;
    return false;
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
  conn.secure->set_verify_mode(ssl::verify_peer);
  conn.lowest().expires_at(deadline);
  conn.secure->async_handshake(ssl::stream_base::client, [&](error_code ec) { result = ec; });
  run();
  if (result || cancelled_) {
    const long verified = SSL_get_verify_result(native);
    return tls_failure(
        result ? result : asio::error::operation_aborted,
        result && !cancelled_ && verified != X509_V_OK ? verify_failure(verified) : "");
  }
  return true;
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

}  // namespace runsync
