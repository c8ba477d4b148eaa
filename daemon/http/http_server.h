// The HTTP/1.1 listener (Boost.Beast, asynchronous, keep-alive). Sessions
// only move bytes: each request's head goes to a HeadCheck, which may answer
// it before its body is read; each complete request goes to a Handler, which
// answers through a Respond callback — possibly later and from another
// thread. Open connections are capped (max_connections).
//
// Thread safety: construct, start and stop on the thread that runs the
// io_context. Respond callbacks may be invoked from any thread, once each.
// A session owns what it uses: one whose handler has not answered yet
// outlives the HttpServer object and still answers (while the io_context
// runs).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace boost::asio {
class io_context;
}

namespace runsync {

struct ServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote;  // peer address, for logs

  // The first header with this lower-case name, or "".
  std::string_view header(std::string_view lower_name) const;
  // The target without its query string.
  std::string_view path() const;
};

struct ServerResponse {
  int status = 200;
  std::string body;
  // Static text (a literal): answers name one of a few types, and a string
  // of this length would be an allocation per answer.
  std::string_view content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;

  static ServerResponse json(int status, std::string body);
  // {"error": message} with the given status.
  static ServerResponse error(int status, std::string_view message);
  // 503 with Retry-After: 1, for a write the writer's full queue refused.
  static ServerResponse queue_full();
};

using Respond = std::function<void(ServerResponse)>;
using Handler = std::function<void(ServerRequest&&, Respond)>;
// Decides a request from its head alone, once the header is read and before
// the body is: the answer when the head settles it (a wrong secret, an
// unknown path), nullopt when the body must be read. `head.body` is empty.
// Runs on the I/O thread.
using HeadCheck = std::function<std::optional<ServerResponse>(const ServerRequest& head)>;
// Told about requests that were refused before reaching the handler
// (413, 400 malformed HTTP or framing, 501 transfer coding): the status and
// a reason for the log.
using RejectObserver = std::function<void(int status, const std::string& reason,
                                          const std::string& remote)>;
// Told when accepting stops for a while: accept() failed for want of
// resources (EMFILE, ENFILE, ENOBUFS, ENOMEM; `error` says which, and
// accepting resumes after `retry_in`), or a connection arrived while
// max_connections are open and every one of them passed the head check
// (`error` empty; it and later ones wait until one closes). Runs on the
// I/O thread.
using AcceptPauseObserver =
    std::function<void(const std::string& error, std::chrono::milliseconds retry_in)>;
// Told when a connection is closed without an answer to keep the listener
// open to others: `reason` "slow" (its request came slower than
// min_request_rate) or "at_cap" (at max_connections, the oldest connection
// whose request had not passed the head check, closed for a new one). Runs
// on the I/O thread.
using ShedObserver = std::function<void(const char* reason, const std::string& remote)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 picks a free port; see HttpServer::port()
  std::uint64_t max_body_bytes = 1048576;
  std::chrono::seconds read_timeout{30};  // per request, and idle keep-alive
  std::chrono::seconds write_timeout{30};
  // Open connections at most. At the cap a new connection is taken by
  // closing the oldest one whose request has not passed the head check (it
  // sent no credentials yet, or wrong ones); when every open connection
  // has passed it, new ones wait in the listen backlog. A connection that
  // passed the head check once is never closed this way.
  std::size_t max_connections = 1024;
  // A request must keep coming at this average rate (bytes per second), as
  // Apache's mod_reqtimeout MinRate: its header within min_rate_grace plus
  // one second per min_request_rate bytes received so far, and its body
  // likewise, counted from the end of the header. A slower client is
  // closed without an answer. A keep-alive connection's next request is
  // timed from its first byte (read_timeout bounds the wait for it). 0
  // turns the rule off; read_timeout bounds every request regardless.
  std::uint64_t min_request_rate = 500;
  std::chrono::milliseconds min_rate_grace{5000};
  // How often open connections are checked against min_request_rate.
  std::chrono::milliseconds rate_check_interval{1000};
  // How long accepting pauses after accept() fails for want of resources.
  std::chrono::milliseconds accept_retry_delay{250};
  // An answer sent before the request's body was read (413, 401, 400 …) is
  // followed by a lingering close, as nginx's lingering_close: the server
  // stops sending, then reads and discards what the client still sends, so
  // the client reads the answer rather than a reset. It stops after
  // linger_time in all, linger_idle without a byte, or linger_max_bytes.
  std::chrono::milliseconds linger_time{30000};
  std::chrono::milliseconds linger_idle{5000};
  std::uint64_t linger_max_bytes = 16 * 1024 * 1024;
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& ioc, HttpServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. The error names the address on failure.
  Status start();
  // The bound port (after start()).
  std::uint16_t port() const;
  // Stops accepting new connections. Open sessions finish their current
  // request; idle ones are closed.
  void stop_accepting();
  // After stop_accepting: closes every session once its response is sent.
  void close_sessions();
  std::size_t open_sessions() const;
  // Observers and the head check are set before start().
  void set_reject_observer(RejectObserver observer);
  void set_head_check(HeadCheck check);
  void set_accept_pause_observer(AcceptPauseObserver observer);
  void set_shed_observer(ShedObserver observer);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The process's open-file limit (RLIMIT_NOFILE) after raise_open_file_limit().
struct OpenFileLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
  std::string error;  // why the soft limit could not be raised; empty when it was (or already was)
};

// Raises the soft open-file limit to the hard one, as a listener that may
// hold max_connections sockets needs. Fails (error set, limits unchanged)
// where setrlimit is not allowed, e.g. under a seccomp filter.
OpenFileLimit raise_open_file_limit();

}  // namespace runsync
