// HttpServer (http_server.h): the listener — binding, accepting, the cap on
// open connections (shedding the oldest one that has not passed the head
// check, or pausing accepting), the minimum-rate sweep, stopping — plus the
// request and response helpers and the open-file limit. What happens on one
// connection is server_session.cc's.
#include "daemon/http/http_server.h"

#include <sys/resource.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "daemon/http/server_session.h"

namespace runsync {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using server_detail::AnswerQueue;
using server_detail::Registry;
using server_detail::Session;
using server_detail::SessionShared;

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
