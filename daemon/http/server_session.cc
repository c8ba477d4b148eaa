// Session and AnswerQueue (server_session.h): the HTTP/1.1 protocol state
// machine of one connection, from reading a request's head to writing its
// answer, lingering or closing.
#include "daemon/http/server_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <charconv>
#include <string_view>

namespace runsync::server_detail {
namespace {

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

}  // namespace

Session::Session(tcp::socket socket, std::shared_ptr<const SessionShared> shared,
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

Session::~Session() {
  std::lock_guard lock(registry_->mu);
  registry_->sessions.erase(this);
  if (unauthenticated_) registry_->unauthenticated.erase(in_unauthenticated_);
  if (shed_for_room_) --registry_->shedding;
  if (registry_->paused_at_cap && registry_->resume_accepting) {
    registry_->paused_at_cap = false;
    registry_->resume_accepting();
  }
}

void Session::start() {
  {
    std::lock_guard lock(registry_->mu);
    registry_->sessions.insert(this);
    in_unauthenticated_ = registry_->unauthenticated.insert(registry_->unauthenticated.end(), this);
    unauthenticated_ = true;
  }
  begin_request();
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
}

std::shared_ptr<Session> Session::take_oldest_unauthenticated(Registry& registry) {
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

void Session::shed(const char* reason) {
  if (shed_) return;
  shed_ = true;
  phase_ = Phase::kOther;
  if (shared_->shed) shared_->shed(reason, remote_);
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

void Session::check_rate(std::chrono::steady_clock::time_point now) {
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

void Session::close_when_idle() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->close_after_write_ = true;
    if (!self->busy_) {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    }
  });
}

void Session::do_read() {
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
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

bool Session::read_failed(const beast::error_code& ec) {
  if (is_disconnect(ec)) {
    close();
    return true;
  }
  if (!ec) return false;
  refuse_read_error(ec);
  return true;
}

void Session::on_header(beast::error_code ec) {
  if (read_failed(ec)) return;
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
                             [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                               if (write_ec) return self->close();
                               self->read_body();
                             });
  }
  read_body();
}

void Session::authenticated() {
  std::lock_guard lock(registry_->mu);
  if (!unauthenticated_) return;
  registry_->unauthenticated.erase(in_unauthenticated_);
  unauthenticated_ = false;
}

void Session::begin_request() {
  phase_ = Phase::kHeader;
  phase_started_ = std::chrono::steady_clock::now();
  waiting_for_first_byte_ = requests_read_ > 0;
}

void Session::read_body() {
  phase_ = Phase::kBody;
  phase_started_ = std::chrono::steady_clock::now();
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
}

void Session::on_body(beast::error_code ec) {
  if (read_failed(ec)) return;
  dispatch();
}

void Session::refuse_read_error(const beast::error_code& ec) {
  if (ec == http::error::body_limit) {
    return refuse_unread(413,
                         "body larger than " + std::to_string(options_.max_body_bytes) + " bytes");
  }
  if (extension_bytes_ > kHeaderLimitBytes) {
    return refuse_unread(
        400, "chunk extensions longer than " + std::to_string(kHeaderLimitBytes) + " bytes in all");
  }
  if (ec == http::error::buffer_overflow) {
    return refuse_unread(400, "a chunk line or the trailer is longer than " +
                                  std::to_string(kHeaderLimitBytes) + " bytes");
  }
  refuse_unread(400, "malformed HTTP request: " + ec.message());
}

void Session::refuse_unread(int status, const std::string& reason) {
  phase_ = Phase::kOther;
  notify_reject(status, reason);
  keep_alive_ = false;
  linger_after_write_ = true;
  send(ServerResponse::error(status, reason));
}

void Session::answer_unread(ServerResponse resp) {
  phase_ = Phase::kOther;
  if (!parser_->is_done()) {
    keep_alive_ = false;
    linger_after_write_ = true;
  }
  send(std::move(resp));
}

void Session::dispatch() {
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

void Session::send(ServerResponse resp) {
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

void Session::append_number(std::string& out, std::size_t n) {
  char digits[24];
  const auto written = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, written.ptr);
}

void Session::on_write(beast::error_code ec, bool keep) {
  busy_ = false;
  if (!ec && linger_after_write_) return linger();
  if (ec || !keep) return close();
  begin_request();
  do_read();
}

void Session::linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  linger_left_ = options_.linger_max_bytes;
  linger_until_ = std::chrono::steady_clock::now() + options_.linger_time;
  discard();
}

void Session::discard() {
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

void Session::close() {
  phase_ = Phase::kOther;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.close();
}

void Session::notify_reject(int status, const std::string& reason) {
  if (reject_ && *reject_) (*reject_)(status, reason, remote_);
}

void AnswerQueue::drain() {
  {
    std::lock_guard lock(mu_);
    draining_.swap(pending_);
  }
  for (auto& [session, response] : draining_) session->send(std::move(response));
  draining_.clear();
}

}  // namespace runsync::server_detail
