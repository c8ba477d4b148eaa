// A small HTTP/1.1 client (http:// and https://) with a synchronous
// interface, for one worker thread such as the poller. Built on Boost.Beast
// with asynchronous operations on a private io_context, so that every stage
// (resolve, connect, TLS handshake, write, read) is bounded by the
// request's deadline. Beast and Asio stay out of this header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace runsync {

struct HttpRequest {
  std::string method = "GET";  // "GET" or "POST" (any token is sent as is)
  std::string url;             // absolute: http[s]://host[:port]/target
  std::string body;            // sent with Content-Length (also when empty for POST)
  // Sent as HTTP Basic credentials when set.
  std::optional<std::pair<std::string, std::string>> basic_auth;  // user, password
  // Extra headers; Host, Content-Type (application/json), Content-Length,
  // User-Agent and Authorization are set by the client.
  std::vector<std::pair<std::string, std::string>> headers;
  // The whole request (every stage together) must finish within this; the
  // client's default when unset.
  std::optional<std::chrono::milliseconds> timeout;
};

struct HttpResponse {
  int status = 0;
  std::string date;          // the Date header, empty when absent
  std::string retry_after;   // the Retry-After header, empty when absent
  std::string content_type;  // the Content-Type header, empty when absent
  std::string body;
};

// Where a request failed.
enum class HttpStage { kUrl, kResolve, kConnect, kTlsHandshake, kWrite, kRead };
const char* stage_name(HttpStage stage);

struct HttpError {
  std::error_code code;  // the Asio/Beast/SSL error (beast timeout, eof, ...)
  HttpStage stage = HttpStage::kUrl;
  // True once any byte of the request was handed to the connection: the
  // server may have received and processed it, so the outcome of a
  // non-idempotent request is unknown.
  bool may_have_been_sent = false;
  bool timed_out = false;  // the deadline passed
  bool cancelled = false;  // HttpClient::cancel() was called
  // Set when the server's certificate was not trusted (a configuration
  // matter, not a transient one): why, e.g. "unknown issuer (unable to get
  // local issuer certificate)", "expired (certificate has expired)", "host
  // name mismatch (hostname mismatch)", or that `ca_file` cannot be loaded.
  std::string tls_verify_error;
  std::string message;     // one line: stage, host, error text
};

// A response (whatever its status) or a transport error.
struct HttpResult {
  HttpResponse response;  // meaningful when ok()
  std::optional<HttpError> error;
  bool ok() const { return !error.has_value(); }
};

// What TestRailClient needs from an HTTP client; abstract so tests can
// script answers without a network.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Sends one request and waits for the whole response or an error. Never
  // throws.
  virtual HttpResult send(const HttpRequest& request) = 0;
  // Makes the send() in progress (if any) and every later one fail soon
  // with `cancelled` set. Thread-safe; callable from any thread.
  virtual void cancel() {}
};

struct HttpClientOptions {
  std::chrono::milliseconds timeout{30'000};  // default per-request deadline
  std::size_t body_limit = 64u << 20;         // larger responses fail at kRead
  std::string user_agent = "runsync";
  // Idle keep-alive connections older than this are not reused (servers
  // close theirs after a while; reusing one just as it closes loses a POST).
  std::chrono::milliseconds max_idle{20'000};
  // Extra trusted certificate authorities (PEM), in addition to the system
  // store; for tests with a self-signed server certificate.
  std::string extra_ca_pem;
  // A PEM file of further trusted certificate authorities (testrail.ca_file),
  // read when the first https request is made.
  std::string ca_file;
};

// The real client. Keeps one keep-alive connection per scheme/host/port and
// reuses it; a connection the server closed (seen before reuse), or idle for
// longer than max_idle, is replaced. When a reused connection turns out dead
// anyway, the request is sent once more on a fresh connection, but only when
// the server cannot have processed it: the write failed, or (for idempotent
// methods, i.e. not POST/PATCH) EOF or reset came before any response byte.
// A POST whose write completed is never repeated here; its error says
// `may_have_been_sent`. The error reported is that of the final attempt.
// HTTPS verifies the peer against the system CA store (plus `extra_ca_pem`
// and `ca_file`) and the host name (or IP address), sends SNI, and requires
// TLS 1.2 or newer; a certificate that fails sets `tls_verify_error`.
//
// Thread safety: send() must be called from one thread at a time; cancel()
// from any thread.
class HttpClient final : public HttpTransport {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient() override;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResult send(const HttpRequest& request) override;
  void cancel() override;

  // Connections opened so far (for tests of keep-alive reuse).
  std::uint64_t connections_opened() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// What is wrong with `path` as a file of trusted CA certificates: it cannot
// be read, or it holds no PEM certificate OpenSSL can parse; nullopt when it
// is usable.
std::optional<std::string> ca_file_problem(const std::string& path);

// A parsed absolute URL.
struct ParsedUrl {
  bool tls = false;
  std::string host;    // without brackets for IPv6 literals
  std::string port;    // "80"/"443" when absent
  std::string target;  // path and query, "/" when empty
};
std::optional<ParsedUrl> parse_url(std::string_view url);

// RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") to unix seconds;
// nullopt when `text` is anything else.
std::optional<std::int64_t> parse_http_date(std::string_view text);
// Unix seconds to IMF-fixdate.
std::string format_http_date(std::int64_t unix_seconds);

}  // namespace runsync
