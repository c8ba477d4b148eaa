#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace runsync::testing {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

TempDir::TempDir() {
  std::string pattern = ::testing::TempDir() + "runsync_test_XXXXXX";
  char* made = mkdtemp(pattern.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  const std::string p = file(name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // poll interval, not a wait
  }
  return true;
}

std::string TestResponse::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return "";
}

struct TestHttpClient::Impl {
  boost::asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  unsigned short port;
  bool connected = false;
};

TestHttpClient::TestHttpClient(unsigned short port) : impl_(new Impl) { impl_->port = port; }

TestHttpClient::~TestHttpClient() {
  beast::error_code ec;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  delete impl_;
}

TestResponse TestHttpClient::request(const std::string& method, const std::string& target,
                                     const std::string& body,
                                     const std::vector<std::pair<std::string, std::string>>& headers) {
  TestResponse out;
  beast::error_code ec;
  if (!impl_->connected) {
    impl_->stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), impl_->port), ec);
    if (ec) {
      out.error = ec.message();
      return out;
    }
    impl_->connected = true;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (method == "POST") req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(impl_->stream, req, ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  if (!ec) http::read(impl_->stream, impl_->buffer, parser, ec);
  if (ec) {
    out.error = ec.message();
    impl_->connected = false;
    impl_->stream.close();
    impl_->buffer.clear();
    return out;
  }
  auto res = parser.release();
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  for (const auto& f : res) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  if (!res.keep_alive()) {
    impl_->connected = false;
    impl_->stream.close();
    impl_->buffer.clear();
  }
  return out;
}

}  // namespace runsync::testing
