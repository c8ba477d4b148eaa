#include "daemon/http/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sys/resource.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

namespace runsync {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string_view ServerRequest::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return {};
}

std::string_view ServerRequest::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

ServerResponse ServerResponse::json(int status, std::string body) {
  ServerResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

ServerResponse ServerResponse::error(int status, std::string_view message) {
  // The message may quote the request (a path), which need not be UTF-8.
  return json(status, nlohmann::json{{"error", message}}.dump(
                          -1, ' ', false, nlohmann::json::error_handler_t::replace));
}

ServerResponse ServerResponse::queue_full() {
  ServerResponse busy = error(503, "ingest queue is full, retry later");
  busy.headers.emplace_back("Retry-After", "1");
  return busy;
}

namespace {

class Session;

struct Registry {
  std::mutex mu;
  std::set<Session*> sessions;
  // Sessions whose request has not passed the head check yet, oldest
  // first: the ones closed to make room at max_connections.
  std::list<Session*> unauthenticated;
  std::size_t shedding = 0;  // sessions closed to make room, not yet gone
  std::size_t live() const { return sessions.size() - shedding; }
  bool closing = false;
  // Set when accepting stopped at max_connections; the session that ends
  // next clears it and calls resume_accepting (both under mu).
  bool paused_at_cap = false;
  std::function<void()> resume_accepting;
  // Lingering reads land here and nobody reads it, so sessions share it.
  std::array<char, 64 * 1024> discard;
};

// RFC 9112 §6.1 and §6.3: a request whose body length cannot be told from
// its head is answered 400 and the connection closed; a transfer coding
// other than chunked is not implemented (501). Beast has already refused a
// bad or repeated Content-Length, and Content-Length before
// Transfer-Encoding, but not the rest. Returns the status and reason.
std::optional<std::pair<int, std::string>> framing_error(
    const http::request<http::string_body>& msg) {
  std::vector<std::string_view> codings;
  bool present = false;
  for (const auto& field : msg) {
    if (field.name() != http::field::transfer_encoding) continue;
    present = true;
    for (auto coding : http::token_list(field.value())) codings.emplace_back(coding);
  }
  if (!present) return std::nullopt;
  if (msg.version() < 11) {
    return std::make_pair(400, std::string("Transfer-Encoding in an HTTP/1.0 request"));
  }
  if (msg.count(http::field::content_length) > 0) {
    return std::make_pair(400, std::string("both Content-Length and Transfer-Encoding"));
  }
  std::size_t chunked = 0;
  for (auto coding : codings) chunked += beast::iequals(coding, "chunked") ? 1 : 0;
  if (codings.empty() || !beast::iequals(codings.back(), "chunked") || chunked > 1) {
    return std::make_pair(400, std::string("Transfer-Encoding must end in a single chunked, "
                                           "else the body's length is unknown"));
  }
  if (codings.size() > 1) {
    return std::make_pair(501, std::string("only the chunked transfer coding is supported"));
  }
  return std::nullopt;
}

bool expects_continue(const http::request<http::string_body>& msg) {
  auto it = msg.find(http::field::expect);
  return it != msg.end() && beast::iequals(it->value(), "100-continue");
}

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
         ec == beast::error::timeout || ec == asio::error::connection_reset ||
         ec == asio::error::eof;
}

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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<const SessionShared> shared,
          std::shared_ptr<Registry> registry, std::weak_ptr<AnswerQueue> answers)
      : stream_(std::move(socket)),
        shared_(std::move(shared)),
        options_(shared_->options),
        handler_(shared_->handler),
        head_check_(shared_->head_check),
        registry_(std::move(registry)),
        answers_(std::move(answers)),
        reject_(&shared_->reject) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  ~Session() {
    std::lock_guard lock(registry_->mu);
    registry_->sessions.erase(this);
    if (unauthenticated_) registry_->unauthenticated.erase(in_unauthenticated_);
    if (shed_for_room_) --registry_->shedding;
    if (registry_->paused_at_cap && registry_->resume_accepting) {
      registry_->paused_at_cap = false;
      registry_->resume_accepting();
    }
  }

  void start() {
    {
      std::lock_guard lock(registry_->mu);
      registry_->sessions.insert(this);
      in_unauthenticated_ =
          registry_->unauthenticated.insert(registry_->unauthenticated.end(), this);
      unauthenticated_ = true;
    }
    begin_request();
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

  // Under the registry's lock, on the I/O thread: takes the oldest session
  // whose request has not passed the head check out of the way of a new
  // connection (see shed()); nullptr when there is none.
  static std::shared_ptr<Session> take_oldest_unauthenticated(Registry& registry) {
    for (Session* s : registry.unauthenticated) {
      auto sp = s->weak_from_this().lock();  // null while it is being destroyed
      if (!sp) continue;
      registry.unauthenticated.erase(s->in_unauthenticated_);
      s->unauthenticated_ = false;
      s->shed_for_room_ = true;
      ++registry.shedding;
      return sp;
    }
    return nullptr;
  }

  // On the I/O thread: closes the connection now, without an answer.
  void shed(const char* reason) {
    if (shed_) return;
    shed_ = true;
    phase_ = Phase::kOther;
    if (shared_->shed) shared_->shed(reason, remote_);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // On the I/O thread: closes the session if its request is coming slower
  // than options_.min_request_rate allows (see HttpServerOptions).
  void check_rate(std::chrono::steady_clock::time_point now) {
    if (phase_ == Phase::kOther || shed_ || options_.min_request_rate == 0) return;
    std::size_t received = buffer_.size();
    if (phase_ == Phase::kBody && parser_) received += parser_->get().body().size();
    if (waiting_for_first_byte_) {
      if (received == 0) return;
      waiting_for_first_byte_ = false;
      phase_started_ = now;
      return;
    }
    const auto earned = std::chrono::milliseconds(
        static_cast<std::int64_t>(received * 1000 / options_.min_request_rate));
    if (now - phase_started_ > options_.min_rate_grace + earned) shed("slow");
  }

  // Closes the session if it is idle; otherwise after the current answer.
  void close_when_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->close_after_write_ = true;
      if (!self->busy_) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.close();
      }
    });
  }

 private:
  friend class AnswerQueue;  // calls send()

  void do_read() {
    // Beast reads at most the buffer's free capacity (512 bytes when it
    // starts empty): with room for a typical request it takes one recv.
    if (buffer_.capacity() < kReadBufferBytes) buffer_.reserve(kReadBufferBytes);
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(kHeaderLimitBytes);
    extension_bytes_ = 0;
    parser_->on_chunk_header(count_extensions_);
    version_ = 11;
    is_head_ = false;
    stream_.expires_after(options_.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (is_disconnect(ec)) return close();
    if (ec) return refuse_read_error(ec);
    const auto& msg = parser_->get();
    version_ = msg.version();
    is_head_ = msg.method() == http::verb::head;
    keep_alive_ = msg.keep_alive();
    if (auto bad = framing_error(msg)) return refuse_unread(bad->first, bad->second);
    head_ = ServerRequest{};
    head_.method = std::string(msg.method_string());
    head_.target = std::string(msg.target());
    head_.remote = remote_;
    head_.headers.reserve(8);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      head_.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    if (head_check_) {
      if (auto answer = head_check_(head_)) return answer_unread(std::move(*answer));
    }
    authenticated();
    if (parser_->is_done()) return dispatch();
    if (version_ >= 11 && expects_continue(msg)) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                               [self = shared_from_this()](beast::error_code write_ec,
                                                           std::size_t) {
                                 if (write_ec) return self->close();
                                 self->read_body();
                               });
    }
    read_body();
  }

  // Once a head passed the head check the connection is never closed to
  // make room for another.
  void authenticated() {
    std::lock_guard lock(registry_->mu);
    if (!unauthenticated_) return;
    registry_->unauthenticated.erase(in_unauthenticated_);
    unauthenticated_ = false;
  }

  // A request's header is being waited for: it is timed from now, or for a
  // later request on a kept-alive connection from its first byte.
  void begin_request() {
    phase_ = Phase::kHeader;
    phase_started_ = std::chrono::steady_clock::now();
    waiting_for_first_byte_ = requests_read_ > 0;
  }

  // The body, under what is left of the request's read timeout.
  void read_body() {
    phase_ = Phase::kBody;
    phase_started_ = std::chrono::steady_clock::now();
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_body(ec);
                     });
  }

  void on_body(beast::error_code ec) {
    if (is_disconnect(ec)) return close();
    if (ec) return refuse_read_error(ec);
    dispatch();
  }

  void refuse_read_error(const beast::error_code& ec) {
    if (ec == http::error::body_limit) {
      return refuse_unread(413, "body larger than " + std::to_string(options_.max_body_bytes) +
                                    " bytes");
    }
    if (extension_bytes_ > kHeaderLimitBytes) {
      return refuse_unread(400, "chunk extensions longer than " +
                                    std::to_string(kHeaderLimitBytes) + " bytes in all");
    }
    if (ec == http::error::buffer_overflow) {
      return refuse_unread(400, "a chunk line or the trailer is longer than " +
                                    std::to_string(kHeaderLimitBytes) + " bytes");
    }
    refuse_unread(400, "malformed HTTP request: " + ec.message());
  }

  // Malformed HTTP or framing: where this request ends, and so where the
  // next one would start, is unknown. Answers, then closes, lingering.
  void refuse_unread(int status, const std::string& reason) {
    phase_ = Phase::kOther;
    notify_reject(status, reason);
    keep_alive_ = false;
    linger_after_write_ = true;
    send(ServerResponse::error(status, reason));
  }

  // Answers a well-formed request before its body is read. When some of the
  // body may still be coming, the connection closes after the answer,
  // lingering.
  void answer_unread(ServerResponse resp) {
    phase_ = Phase::kOther;
    if (!parser_->is_done()) {
      keep_alive_ = false;
      linger_after_write_ = true;
    }
    send(std::move(resp));
  }

  void dispatch() {
    phase_ = Phase::kOther;
    ++requests_read_;
    ServerRequest req = std::move(head_);
    req.body = std::move(parser_->get().body());
    busy_ = true;
    stream_.expires_never();
    handler_(std::move(req), [self = shared_from_this()](ServerResponse resp) {
      if (auto answers = self->answers_.lock()) return answers->push(self, std::move(resp));
      // The server is gone; the session still answers on its own.
      asio::post(self->stream_.get_executor(),
                 [self, resp = std::move(resp)]() mutable { self->send(std::move(resp)); });
    });
  }

  // On the I/O thread.
  void send(ServerResponse resp) {
    busy_ = true;
    const bool keep = keep_alive_ && !close_after_write_;
    // The whole answer in one buffer of the session's, status line to body,
    // reused between answers: answers are a few dozen bytes and need no
    // Beast message or serializer.
    std::string& out = write_buffer_;
    out.clear();
    out += version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_number(out, static_cast<unsigned>(resp.status));
    out += ' ';
    out += http::obsolete_reason(static_cast<http::status>(resp.status));
    out += "\r\nServer: runsync\r\nContent-Type: ";
    out += resp.content_type;
    out += "\r\n";
    for (const auto& [k, v] : resp.headers) {
      out += k;
      out += ": ";
      out += v;
      out += "\r\n";
    }
    // As Beast's keep_alive(): HTTP/1.1 says when it closes, 1.0 when it
    // does not.
    if (version_ >= 11 && !keep) out += "Connection: close\r\n";
    if (version_ < 11 && keep) out += "Connection: keep-alive\r\n";
    out += "Content-Length: ";
    append_number(out, resp.body.size());
    out += "\r\n\r\n";
    if (!is_head_) out += resp.body;
    stream_.expires_after(options_.write_timeout);
    asio::async_write(stream_, asio::buffer(out),
                      [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                        self->on_write(ec, keep);
                      });
  }

  static void append_number(std::string& out, std::size_t n) {
    char digits[24];
    const auto written = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, written.ptr);
  }

  void on_write(beast::error_code ec, bool keep) {
    busy_ = false;
    if (!ec && linger_after_write_) return linger();
    if (ec || !keep) return close();
    begin_request();
    do_read();
  }

  // Half-closes, then reads and discards what the client still sends until
  // it closes too or a linger limit runs out: closing with unread bytes
  // would make the kernel reset the connection, and a client still writing
  // its body would see the reset instead of the answer.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    linger_left_ = options_.linger_max_bytes;
    linger_until_ = std::chrono::steady_clock::now() + options_.linger_time;
    discard();
  }

  void discard() {
    const auto left = linger_until_ - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return close();
    stream_.expires_after(std::min<std::chrono::steady_clock::duration>(left, options_.linger_idle));
    stream_.async_read_some(asio::buffer(registry_->discard),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec || n >= self->linger_left_) return self->close();
                              self->linger_left_ -= n;
                              self->discard();
                            });
  }

  void close() {
    phase_ = Phase::kOther;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  void notify_reject(int status, const std::string& reason) {
    if (reject_ && *reject_) (*reject_)(status, reason, remote_);
  }

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
  ServerRequest head_;  // the request being read, from its header on
  std::string write_buffer_;  // the answer being written; one at a time
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

void AnswerQueue::drain() {
  {
    std::lock_guard lock(mu_);
    draining_.swap(pending_);
  }
  for (auto& [session, response] : draining_) session->send(std::move(response));
  draining_.clear();
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpServerOptions opts, Handler h)
      : ioc(io),
        shared(std::make_shared<SessionShared>()),
        options(shared->options),
        acceptor(io),
        registry(std::make_shared<Registry>()),
        answers(std::make_shared<AnswerQueue>(io)) {
    shared->options = std::move(opts);
    shared->handler = std::move(h);
  }

  void do_accept() {
    // Sessions use the io_context's own executor: one thread runs it, so a
    // strand would only add a shared state to copy and lock per handler.
    // Answers from the writer's threads arrive through the AnswerQueue.
    acceptor.async_accept(ioc,
                          [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                            self->on_accept(ec, std::move(socket));
                          });
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec == asio::error::no_descriptors ||
        ec == boost::system::errc::too_many_files_open_in_system ||
        ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
      // The connection stays in the backlog: accepting again at once would
      // fail again at once, and spin.
      if (accept_paused) accept_paused(ec.message(), options.accept_retry_delay);
      accept_timer.expires_after(options.accept_retry_delay);
      accept_timer.async_wait([self = shared_from_this()](const beast::error_code& wait_ec) {
        if (!wait_ec && self->acceptor.is_open()) self->do_accept();
      });
      return;
    }
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      if (!admit(std::move(socket))) return;
    }
    do_accept();
  }

  // Starts a session for a new connection. At max_connections the oldest
  // session whose request has not passed the head check makes room; when
  // there is none, the connection is parked until a session closes.
  // Returns false when accepting pauses.
  bool admit(tcp::socket socket) {
    std::shared_ptr<Session> make_room;
    {
      std::unique_lock lock(registry->mu);
      if (registry->live() >= options.max_connections) {
        make_room = Session::take_oldest_unauthenticated(*registry);
        if (!make_room) return park(std::move(socket), lock);
      }
    }
    if (make_room) make_room->shed("at_cap");
    std::make_shared<Session>(std::move(socket), shared, registry, answers)->start();
    std::unique_lock lock(registry->mu);
    // Accepting goes on while some session could make room.
    if (registry->live() >= options.max_connections && registry->unauthenticated.empty()) {
      return park(std::nullopt, lock);
    }
    return true;
  }

  // Under the registry's lock: pauses accepting until a session closes
  // (resume()), keeping `socket` for then. Returns false.
  bool park(std::optional<tcp::socket> socket, std::unique_lock<std::mutex>& lock) {
    if (socket) parked.emplace(std::move(*socket));
    registry->paused_at_cap = true;
    lock.unlock();
    if (accept_paused) accept_paused("", std::chrono::milliseconds(0));
    return false;
  }

  // A session closed while accepting was paused at the cap.
  void resume() {
    if (!acceptor.is_open()) return;
    if (parked) {
      tcp::socket socket = std::move(*parked);
      parked.reset();
      if (!admit(std::move(socket))) return;
    }
    do_accept();
  }

  // Every rate_check_interval: closes sessions slower than min_request_rate.
  void check_rates() {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(registry->mu);
      live.reserve(registry->sessions.size());
      for (Session* s : registry->sessions) {
        if (auto sp = s->weak_from_this().lock()) live.push_back(std::move(sp));
      }
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto& s : live) s->check_rate(now);
    arm_rate_check();
  }

  void arm_rate_check() {
    if (options.min_request_rate == 0) return;
    rate_timer.expires_after(options.rate_check_interval);
    rate_timer.async_wait([weak = weak_from_this()](const beast::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->check_rates();
    });
  }

  asio::io_context& ioc;
  std::shared_ptr<SessionShared> shared;  // sessions share it
  const HttpServerOptions& options;       // shared->options
  tcp::acceptor acceptor;
  std::shared_ptr<Registry> registry;
  std::shared_ptr<AnswerQueue> answers;
  AcceptPauseObserver accept_paused;
  asio::steady_timer accept_timer{ioc};
  asio::steady_timer rate_timer{ioc};
  std::optional<tcp::socket> parked;  // accepted at the cap, waiting for a slot
  std::uint16_t bound_port = 0;
};

HttpServer::HttpServer(asio::io_context& ioc, HttpServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(ioc, std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { stop_accepting(); }

Status HttpServer::start() {
  const std::string where = impl_->options.host + ":" + std::to_string(impl_->options.port);
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) {
    tcp::resolver resolver(impl_->ioc);
    auto results = resolver.resolve(impl_->options.host, std::to_string(impl_->options.port), ec);
    if (ec || results.empty()) return Status::error("cannot resolve listen address " + where);
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acc.close();
    return Status::error("cannot listen on " + where + ": " + ec.message());
  }
  impl_->bound_port = acc.local_endpoint().port();
  {
    std::lock_guard lock(impl_->registry->mu);
    impl_->registry->resume_accepting = [&ioc = impl_->ioc, weak = std::weak_ptr<Impl>(impl_)] {
      asio::post(ioc, [weak] {
        if (auto impl = weak.lock()) impl->resume();
      });
    };
  }
  impl_->do_accept();
  impl_->arm_rate_check();
  return Status::ok();
}

std::uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::stop_accepting() {
  {
    std::lock_guard lock(impl_->registry->mu);
    impl_->registry->resume_accepting = nullptr;
  }
  beast::error_code ec;
  impl_->acceptor.close(ec);
  impl_->accept_timer.cancel();
  impl_->rate_timer.cancel();
  impl_->parked.reset();
}

void HttpServer::close_sessions() {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(impl_->registry->mu);
    impl_->registry->closing = true;
    for (Session* s : impl_->registry->sessions) {
      // A session being destroyed has no owners left; skip it.
      if (auto sp = s->weak_from_this().lock()) live.push_back(std::move(sp));
    }
  }
  for (auto& s : live) s->close_when_idle();
}

std::size_t HttpServer::open_sessions() const {
  std::lock_guard lock(impl_->registry->mu);
  return impl_->registry->sessions.size();
}

void HttpServer::set_reject_observer(RejectObserver observer) {
  impl_->shared->reject = std::move(observer);
}

void HttpServer::set_head_check(HeadCheck check) { impl_->shared->head_check = std::move(check); }

void HttpServer::set_accept_pause_observer(AcceptPauseObserver observer) {
  impl_->accept_paused = std::move(observer);
}

void HttpServer::set_shed_observer(ShedObserver observer) {
  impl_->shared->shed = std::move(observer);
}

OpenFileLimit raise_open_file_limit() {
  OpenFileLimit out;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    out.error = std::string("getrlimit: ") + std::strerror(errno);
    return out;
  }
  out.soft = limit.rlim_cur;
  out.hard = limit.rlim_max;
  if (limit.rlim_cur >= limit.rlim_max) return out;
  rlimit raised = limit;
  raised.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    out.error = std::string("setrlimit: ") + std::strerror(errno);
    return out;
  }
  out.soft = raised.rlim_cur;
  return out;
}

}  // namespace runsync
