// HttpClient's inside (http_client.h), shared by the two files that define
// it: http_client.cc (the pool of kept-alive connections, sending a request
// and the retry on a fresh connection) and http_connect.cc (opening a
// connection: resolve, TCP connect, TLS handshake and whom it trusts).
// Included by those two only: it brings in Beast, Asio and OpenSSL.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "daemon/http/http_client.h"

namespace runsync {

class HttpClient::Impl {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // One connection to a scheme/host/port, plain or TLS.
  struct Connection {
    std::string host;
    bool tls = false;
    std::unique_ptr<boost::beast::tcp_stream> plain;
    std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> secure;
    boost::beast::flat_buffer buffer;
    int requests = 0;  // requests completed on this connection
    std::chrono::steady_clock::time_point idle_since;

    boost::beast::tcp_stream& lowest() { return tls ? secure->next_layer() : *plain; }
  };

  explicit Impl(HttpClientOptions options) : options_(std::move(options)), resolver_(ioc_) {}

  ~Impl() {
    for (auto& [key, conn] : pool_) close(*conn, /*graceful=*/!cancelled_);
  }

  HttpResult send(const HttpRequest& request);

  // The TLS context, made on first use: loading the system CA store takes a
  // while and plain-http clients never need it.
  boost::asio::ssl::context& tls_context();

  void cancel();

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

  HttpError make_error(boost::system::error_code ec, HttpStage stage, const ParsedUrl& url,
                       bool sent, SteadyTime deadline) const;

  // http_connect.cc: a new connection, or nullptr with `error` set.
  boost::system::error_code resolve(const ParsedUrl& url, SteadyTime deadline,
                                    boost::asio::ip::tcp::resolver::results_type& out);
  std::unique_ptr<Connection> connect(const ParsedUrl& url, SteadyTime deadline,
                                      std::optional<HttpError>& error);
  // The TLS handshake on the connected `conn`, checking the peer's
  // certificate and name; false with `error` set when it fails.
  bool handshake(Connection& conn, const ParsedUrl& url, SteadyTime deadline,
                 std::optional<HttpError>& error);
  void close(Connection& conn, bool graceful);

  // http_client.cc: one request and its response on `conn`.
  Exchange exchange(Connection& conn, const ParsedUrl& url, const HttpRequest& request,
                    SteadyTime deadline);
  template <typename Stream>
  Exchange exchange_on(Stream& stream, Connection& conn, const ParsedUrl& url,
                       const HttpRequest& request, SteadyTime deadline);
  // The idle connection kept for `key` when it is still usable; else nullptr.
  std::unique_ptr<Connection> take_pooled(const std::string& key);

  HttpClientOptions options_;
  boost::asio::io_context ioc_;
  std::unique_ptr<boost::asio::ssl::context> ssl_ctx_;
  std::string ca_file_error_;  // set when options_.ca_file could not be loaded
  boost::asio::ip::tcp::resolver resolver_;
  std::map<std::string, std::unique_ptr<Connection>> pool_;  // scheme://host:port → idle
  Connection* active_ = nullptr;  // the connection of the send() in progress
  std::atomic<bool> cancelled_{false};
  std::atomic<std::uint64_t> opened_{0};
};

}  // namespace runsync
