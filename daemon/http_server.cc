#include "daemon/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
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
  return json(status, nlohmann::json{{"error", message}}.dump());
}

std::optional<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view listen) {
  std::string host;
  std::string_view port_text;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string_view::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return std::nullopt;
    }
    host = std::string(listen.substr(1, close - 1));
    port_text = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = std::string(listen.substr(0, colon));
    port_text = listen.substr(colon + 1);
    if (host.find(':') != std::string::npos) return std::nullopt;
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || port_text.empty() || ec != std::errc() ||
      ptr != port_text.data() + port_text.size() || port > 65535) {
    return std::nullopt;
  }
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

namespace {

class Session;

struct Registry {
  std::mutex mu;
  std::set<Session*> sessions;
  bool closing = false;
};

// Answers handed in from other threads (the writer's sync thread finishes a
// whole batch at once) reach the I/O thread through one post per run of
// answers rather than one each: a post takes the io_context's scheduler
// lock, which the I/O thread takes for every handler it runs, and contention
// there cost both threads futex calls and context switches.
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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServerOptions& options, Handler& handler,
          std::shared_ptr<Registry> registry, std::weak_ptr<AnswerQueue> answers,
          RejectObserver* reject)
      : stream_(std::move(socket)),
        options_(options),
        handler_(handler),
        registry_(std::move(registry)),
        answers_(std::move(answers)),
        reject_(reject) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  ~Session() {
    std::lock_guard lock(registry_->mu);
    registry_->sessions.erase(this);
  }

  void start() {
    {
      std::lock_guard lock(registry_->mu);
      registry_->sessions.insert(this);
    }
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
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
    parser_->header_limit(16 * 1024);
    stream_.expires_after(options_.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return close();
    }
    if (ec == http::error::body_limit) {
      notify_reject(413, "body larger than " + std::to_string(options_.max_body_bytes) + " bytes");
      keep_alive_ = false;
      return send(ServerResponse::error(413, "body larger than " +
                                               std::to_string(options_.max_body_bytes) + " bytes"));
    }
    if (ec) {
      notify_reject(400, "malformed HTTP request: " + ec.message());
      keep_alive_ = false;
      return send(ServerResponse::error(400, "malformed HTTP request: " + ec.message()));
    }
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    is_head_ = msg.method() == http::verb::head;
    ServerRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.remote = remote_;
    req.headers.reserve(8);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    req.body = std::move(msg.body());
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
    // The whole answer in one buffer of the session's, status line to body:
    // Beast's serializer took a tenth of the I/O thread's time, and the
    // message, its fields and their allocations as much again, for answers
    // of a few dozen bytes.
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
    if (ec || !keep) return close();
    do_read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  void notify_reject(int status, const std::string& reason) {
    if (reject_ && *reject_) (*reject_)(status, reason, remote_);
  }

  static constexpr std::size_t kReadBufferBytes = 8 * 1024;

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string write_buffer_;  // the answer being written; one at a time
  const HttpServerOptions& options_;
  Handler& handler_;
  std::shared_ptr<Registry> registry_;
  // Weak: the queue holds sessions while their answers wait in it.
  std::weak_ptr<AnswerQueue> answers_;
  RejectObserver* reject_;
  std::string remote_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool is_head_ = false;
  bool busy_ = false;
  bool close_after_write_ = false;
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
      : ioc(io), options(std::move(opts)), handler(std::move(h)), acceptor(io),
        registry(std::make_shared<Registry>()), answers(std::make_shared<AnswerQueue>(io)) {}

  void do_accept() {
    // Sessions use the io_context's own executor: one thread runs it, so a
    // strand would only add a shared state to copy and lock per handler.
    // Answers from the writer's threads arrive through the AnswerQueue.
    acceptor.async_accept(ioc,
                          [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                            if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) {
                              return;
                            }
                            if (!ec) {
                              socket.set_option(tcp::no_delay(true), ec);
                              std::make_shared<Session>(std::move(socket), self->options,
                                                        self->handler, self->registry,
                                                        self->answers, &self->reject)
                                  ->start();
                            }
                            self->do_accept();
                          });
  }

  asio::io_context& ioc;
  HttpServerOptions options;
  Handler handler;
  tcp::acceptor acceptor;
  std::shared_ptr<Registry> registry;
  std::shared_ptr<AnswerQueue> answers;
  RejectObserver reject;
  std::uint16_t bound_port = 0;
};

HttpServer::HttpServer(asio::io_context& ioc, HttpServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(ioc, std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  beast::error_code ec;
  impl_->acceptor.close(ec);
}

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
  impl_->do_accept();
  return Status::ok();
}

std::uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::stop_accepting() {
  beast::error_code ec;
  impl_->acceptor.close(ec);
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
  impl_->reject = std::move(observer);
}

}  // namespace runsync
