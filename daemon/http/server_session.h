// The connection side of HttpServer (http_server.h): one Session per
// accepted connection reads requests (the head check, then the body, under
// the read timeout and the minimum rate), hands them to the handler and
// writes the answers, which may come back from other threads through the
// AnswerQueue; the Registry is what the listener (http_server.cc) and the
// sessions share to cap and shed connections. Included by those two files
// only: it brings in Beast.
//
// Thread safety: a Session runs on the I/O thread; the Registry is guarded
// by its `mu`; AnswerQueue::push may be called from any thread.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/http/http_server.h"

namespace runsync::server_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Session;

struct Registry {
  std::mutex mu;
  std::set<Session*> sessions;
  // Sessions whose request has not passed the head check yet, oldest
  // first: the ones closed to make room at max_connections.
  std::list<Session*> unauthenticated;
  std::size_t shedding = 0;  // sessions closed to make room, not yet gone
  std::size_t live() const { return sessions.size() - shedding; }
  // Set when accepting stopped at max_connections; the session that ends
  // next clears it and calls resume_accepting (both under mu).
  bool paused_at_cap = false;
  std::function<void()> resume_accepting;
  // Lingering reads land here and nobody reads it, so sessions share it.
  std::array<char, 64 * 1024> discard;
};

// Answers handed in from other threads (the writer's sync thread finishes a
// whole batch at once) reach the I/O thread through one post per run of
// answers rather than one each: a post takes the io_context's scheduler
// lock, which the I/O thread takes for every handler it runs.
class AnswerQueue : public std::enable_shared_from_this<AnswerQueue> {
 public:
  explicit AnswerQueue(asio::io_context& ioc) : ioc_(ioc) {}

  void push(std::shared_ptr<Session> session, ServerResponse response) {
    bool first = false;
    {
      std::lock_guard lock(mu_);
      first = pending_.empty();
      pending_.emplace_back(std::move(session), std::move(response));
    }
    if (first) asio::post(ioc_, [self = shared_from_this()] { self->drain(); });
  }

 private:
  void drain();

  asio::io_context& ioc_;
  std::mutex mu_;
  std::vector<std::pair<std::shared_ptr<Session>, ServerResponse>> pending_;
  std::vector<std::pair<std::shared_ptr<Session>, ServerResponse>> draining_;  // I/O thread's
};

// What sessions use of the server's set-up. Shared: a session may outlive
// the HttpServer (it still answers once its handler responds), so it holds
// this rather than referring into the server. Set before start(), read-only
// after.
struct SessionShared {
  HttpServerOptions options;
  Handler handler;
  HeadCheck head_check;
  RejectObserver reject;
  ShedObserver shed;
};

// One accepted connection, kept alive by shared_from_this() while an
// operation is pending. Leaves the registry when destroyed (and resumes
// accepting when that was paused at the cap).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<const SessionShared> shared,
          std::shared_ptr<Registry> registry, std::weak_ptr<AnswerQueue> answers);
  ~Session();

  // Joins the registry (as not yet past the head check) and starts reading.
  void start();

  // Under the registry's lock, on the I/O thread: takes the oldest session
  // whose request has not passed the head check out of the way of a new
  // connection (see shed()); nullptr when there is none.
  static std::shared_ptr<Session> take_oldest_unauthenticated(Registry& registry);

  // On the I/O thread: closes the connection now, without an answer.
  void shed(const char* reason);

  // On the I/O thread: closes the session if its request is coming slower
  // than options_.min_request_rate allows (see HttpServerOptions).
  void check_rate(std::chrono::steady_clock::time_point now);

  // Closes the session if it is idle; otherwise after the current answer.
  void close_when_idle();

 private:
  friend class AnswerQueue;  // calls send()

  void do_read();

  void on_header(beast::error_code ec);

  // Once a head passed the head check the connection is never closed to
  // make room for another.
  void authenticated();

  // A request's header is being waited for: it is timed from now, or for a
  // later request on a kept-alive connection from its first byte.
  void begin_request();

  // The body, under what is left of the request's read timeout.
  void read_body();

  void on_body(beast::error_code ec);

  // After a read: closes the session when the client went away, refuses
  // the request when it was malformed (refuse_read_error); true when it did
  // either.
  bool read_failed(const beast::error_code& ec);
  void refuse_read_error(const beast::error_code& ec);

  // Malformed HTTP or framing: where this request ends, and so where the
  // next one would start, is unknown. Answers, then closes, lingering.
  void refuse_unread(int status, const std::string& reason);

  // Answers a well-formed request before its body is read. When some of the
  // body may still be coming, the connection closes after the answer,
  // lingering.
  void answer_unread(ServerResponse resp);

  void dispatch();

  // On the I/O thread.
  void send(ServerResponse resp);

  static void append_number(std::string& out, std::size_t n);

  void on_write(beast::error_code ec, bool keep);

  // Half-closes, then reads and discards what the client still sends until
  // it closes too or a linger limit runs out: closing with unread bytes
  // would make the kernel reset the connection, and a client still writing
  // its body would see the reset instead of the answer.
  void linger();

  void discard();

  void close();

  void notify_reject(int status, const std::string& reason);

  static constexpr std::size_t kReadBufferBytes = 8 * 1024;
  // The head, the chunk extensions of a request in all, and one chunk line
  // or the trailer each fit in this many bytes.
  static constexpr std::size_t kHeaderLimitBytes = 16 * 1024;

  beast::tcp_stream stream_;
  // Bounded: Beast holds a whole chunk line, or the whole trailer, in the
  // buffer before parsing it, so without a bound a client could make it
  // grow without end. Body bytes pass through and are counted by body_limit.
  beast::flat_buffer buffer_{kHeaderLimitBytes};
  // Chunk extensions mean nothing to runsync; they count against the header
  // limit so that many small chunks cannot carry an unbounded amount.
  std::size_t extension_bytes_ = 0;
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> count_extensions_ =
      [this](std::uint64_t, beast::string_view extensions, beast::error_code& ec) {
        extension_bytes_ += extensions.size();
        if (extension_bytes_ > kHeaderLimitBytes) ec = http::error::header_limit;
      };
  std::optional<http::request_parser<http::string_body>> parser_;
  ServerRequest head_;                           // the request being read, from its header on
  std::string write_buffer_;                     // the answer being written; one at a time
  std::shared_ptr<const SessionShared> shared_;  // the four below refer into it
  const HttpServerOptions& options_;
  const Handler& handler_;
  const HeadCheck& head_check_;
  std::shared_ptr<Registry> registry_;
  // Weak: the queue holds sessions while their answers wait in it.
  std::weak_ptr<AnswerQueue> answers_;
  const RejectObserver* reject_;
  std::string remote_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool is_head_ = false;
  bool busy_ = false;
  bool close_after_write_ = false;
  bool linger_after_write_ = false;
  std::uint64_t linger_left_ = 0;  // bytes still to discard while lingering
  std::chrono::steady_clock::time_point linger_until_;
  // The minimum rate: which part of a request is being read, since when.
  enum class Phase { kHeader, kBody, kOther };
  Phase phase_ = Phase::kOther;
  std::chrono::steady_clock::time_point phase_started_;
  bool waiting_for_first_byte_ = false;
  std::uint64_t requests_read_ = 0;
  bool shed_ = false;
  // Under registry_->mu: whether this session is in the registry's
  // unauthenticated list (at in_unauthenticated_), and whether it was taken
  // out of it to be closed for a new connection.
  bool unauthenticated_ = false;
  bool shed_for_room_ = false;
  std::list<Session*>::iterator in_unauthenticated_;
};

}  // namespace runsync::server_detail
