// Test helpers: a private temporary directory, waiting on a condition with
// a deadline, and a small blocking HTTP client for loopback tests.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace runsync::testing {

// A fresh directory under ::testing::TempDir(), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `content` to file(name) and returns its path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// Polls `condition` until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

struct TestResponse {
  int status = 0;  // 0 when the request failed
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string error;
  std::string header(const std::string& name) const;
};

// One keep-alive HTTP/1.1 connection to 127.0.0.1:port.
class TestHttpClient {
 public:
  explicit TestHttpClient(unsigned short port);
  ~TestHttpClient();
  TestHttpClient(const TestHttpClient&) = delete;
  TestHttpClient& operator=(const TestHttpClient&) = delete;
  TestResponse request(const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::vector<std::pair<std::string, std::string>>& headers = {});
  TestResponse post(const std::string& target, const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return request("POST", target, body, headers);
  }
  TestResponse get(const std::string& target) { return request("GET", target); }

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace runsync::testing
