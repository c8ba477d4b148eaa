#include "support/fake_testrail.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "daemon/http/base64.h"
#include "daemon/http/http_client.h"  // format_http_date

namespace runsync::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using nlohmann::json;

constexpr std::string_view kApiPrefix = "/index.php?/api/v2/";
constexpr std::string_view kLegacyPrefix = "USER AUTHENTICATION SUCCESSFUL!\n";
constexpr std::int64_t kBareMaxLimit = 250;  // the default and largest `limit` of bare arrays

std::string error_body(const std::string& message) { return json{{"error", message}}.dump(); }

std::optional<std::int64_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v > 0 ? std::optional<std::int64_t>(v) : std::nullopt;
}

// --- a self-signed certificate -------------------------------------------

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;  // what a client must trust: the issuing CA, or cert_pem
};

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  std::string out = bio_to_string(bio);
  BIO_free(bio);
  return out;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str())) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
}

X509* new_certificate(EVP_PKEY* key, const char* common_name, bool expired) {
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) throw std::runtime_error("fake: key generation failed");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), static_cast<long>(std::random_device{}() >> 1));
  X509_gmtime_adj(X509_getm_notBefore(cert), expired ? -2 * 86400 : -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), expired ? -86400 : 7 * 86400);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  return cert;
}

// A certificate for `hosts`: self-signed, or issued by a fresh CA (whose
// certificate is then `ca_pem`, the one to trust).
CertAndKey make_certificate(const std::vector<std::string>& hosts, bool ca_issued, bool expired) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = new_certificate(key, "runsync fake testrail", expired);
  EVP_PKEY* ca_key = nullptr;
  X509* ca = nullptr;
  if (ca_issued) {
    ca_key = EVP_EC_gen("P-256");
    ca = new_certificate(ca_key, "runsync fake CA", false);
    X509_set_issuer_name(ca, X509_get_subject_name(ca));
    add_extension(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(ca, ca, NID_subject_key_identifier, "hash");
    X509_sign(ca, ca_key, EVP_sha256());
  }
  X509* issuer = ca != nullptr ? ca : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(issuer));
  std::string san;
  for (const auto& h : hosts) {
    const bool ip =
        h.find_first_not_of("0123456789.") == std::string::npos || h.find(':') != std::string::npos;
    if (!san.empty()) san += ",";
    san += (ip ? "IP:" : "DNS:") + h;
  }
  add_extension(cert, issuer, NID_subject_alt_name, san);
  if (ca != nullptr) add_extension(cert, issuer, NID_authority_key_identifier, "keyid:always");
  X509_sign(cert, ca_key != nullptr ? ca_key : key, EVP_sha256());

  CertAndKey out;
  out.cert_pem = pem_of(cert);
  out.ca_pem = ca != nullptr ? pem_of(ca) : out.cert_pem;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_to_string(bio);
  BIO_free(bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  if (ca != nullptr) X509_free(ca);
  if (ca_key != nullptr) EVP_PKEY_free(ca_key);
  return out;
}

// --- what to do with one request --------------------------------------------

struct Answer {
  enum class Action { kRespond, kTruncate, kDrop };
  Action action = Action::kRespond;
  int status = 200;
  std::string body;
  std::string retry_after;
  std::string date;  // empty: no Date header
  std::chrono::milliseconds delay{0};
  bool keep_alive = true;
};

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection as soon as it waits for a request (at once when
  // it already does), then calls `closed`.
  virtual void close_when_idle(std::function<void()> closed) = 0;
};

// What a session asks the server: the answer to one request.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual Answer handle(const http::request<http::string_body>& req, std::uint64_t connection) = 0;
};

}  // namespace

class FakeTestRail::Impl final : public SessionHost {
 public:
  explicit Impl(Options options);
  ~Impl() override;

  Answer handle(const http::request<http::string_body>& req, std::uint64_t connection) override;
  std::uint64_t next_connection_id() { return ++connections_; }

  struct PlanEntry {
    std::string id;
    std::string name;
    std::int64_t suite_id = 1;
    std::vector<std::int64_t> run_ids;
  };
  struct Plan {
    json summary;
    std::vector<PlanEntry> entries;
  };

  // Everything below mu_ is guarded by it.
  const Options options_;
  CertAndKey cert_;
  std::unique_ptr<ssl::context> ssl_ctx_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::string base_url_;
  std::uint16_t port_ = 0;
  std::vector<std::weak_ptr<SessionBase>> sessions_;  // server thread only
  std::atomic<std::uint64_t> connections_{0};
  std::thread thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::int64_t now_;
  bool bare_arrays_ = false;
  bool ignore_offset_ = false;
  bool legacy_prefix_ = false;
  bool keep_alive_ = true;
  bool next_limit_zero_ = false;
  bool send_date_ = true;
  std::vector<std::int64_t> projects_;
  std::map<std::int64_t, json> runs_;
  std::map<std::int64_t, Plan> plans_;
  std::int64_t next_run_id_ = 1;
  std::int64_t next_plan_id_ = 1;
  std::int64_t next_entry_ = 1;
  std::deque<Fault> faults_;
  std::vector<Request> log_;

  // Locked helpers.
  json make_run_locked(json run);
  void ensure_project_locked(std::int64_t id) {
    if (std::find(projects_.begin(), projects_.end(), id) == projects_.end()) {
      projects_.push_back(id);
    }
  }

 private:
  void do_accept();
  std::pair<int, std::string> route(const std::string& method, const std::string& uri,
                                    const std::string& body);
  std::pair<int, std::string> paginate(
      const std::vector<const json*>& items, const char* key, const std::string& path,
      const std::vector<std::pair<std::string, std::string>>& params);
  json plan_with_entries_locked(const Plan& plan) const;
};

namespace {

template <typename Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, SessionHost& server, std::uint64_t id)
      : stream_(std::move(stream)), server_(server), id_(id), timer_(stream_.get_executor()) {}

  void start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      do_read();
    } else {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) return self->close();
                                beast::get_lowest_layer(self->stream_).expires_never();
                                self->do_read();
                              });
    }
  }

  void close_when_idle(std::function<void()> closed) override {
    if (closed_) return closed();
    on_closed_ = std::move(closed);
    if (idle_) {
      close();
    } else {
      close_pending_ = true;
    }
  }

 private:
  void do_read() {
    if (close_pending_) return close();
    idle_ = true;
    parser_.emplace();
    parser_->body_limit(8u << 20);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    idle_ = false;
    if (ec) return close();
    answer_ = server_.handle(parser_->get(), id_);
    if (answer_.delay.count() > 0) {
      timer_.expires_after(answer_.delay);
      timer_.async_wait([self = this->shared_from_this()](error_code e) {
        if (!e) self->respond();
      });
    } else {
      respond();
    }
  }

  void respond() {
    if (answer_.action == Answer::Action::kDrop) return close();
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(answer_.status));
    res_.set(http::field::server, "fake-testrail");
    res_.set(http::field::content_type, "application/json; charset=utf-8");
    if (!answer_.date.empty()) res_.set(http::field::date, answer_.date);
    if (!answer_.retry_after.empty()) res_.set(http::field::retry_after, answer_.retry_after);
    res_.keep_alive(answer_.keep_alive);
    if (answer_.action == Answer::Action::kTruncate) {
      // Full Content-Length, half the body, then close.
      const std::size_t full = std::max<std::size_t>(answer_.body.size(), 16);
      std::string head = "HTTP/1.1 " + std::to_string(answer_.status) + " OK\r\n";
      for (const auto& field : res_) {
        head += std::string(field.name_string()) + ": " + std::string(field.value()) + "\r\n";
      }
      head += "Content-Length: " + std::to_string(full) + "\r\n\r\n";
      raw_ = head + answer_.body.substr(0, answer_.body.size() / 2);
      asio::async_write(
          stream_, asio::buffer(raw_),
          [self = this->shared_from_this()](error_code, std::size_t) { self->close(); });
      return;
    }
    res_.body() = answer_.body;
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = this->shared_from_this()](error_code ec, std::size_t) {
      if (ec || !self->answer_.keep_alive) return self->close();
      self->do_read();
    });
  }

  void close() {
    idle_ = false;
    if (closed_) return;
    closed_ = true;
    error_code ec;
    auto& lowest = beast::get_lowest_layer(stream_);
    lowest.socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest.close();
    if (on_closed_) std::exchange(on_closed_, nullptr)();
  }

  Stream stream_;
  SessionHost& server_;
  const std::uint64_t id_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string raw_;
  Answer answer_;
  bool idle_ = false;
  bool closed_ = false;
  bool close_pending_ = false;
  std::function<void()> on_closed_;
};

}  // namespace

FakeTestRail::Impl::Impl(Options options)
    : options_(std::move(options)), acceptor_(ioc_), now_(options_.now) {
  if (options_.tls) {
    cert_ = make_certificate(options_.cert_hosts, options_.ca_issued, options_.expired);
    ssl_ctx_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    ssl_ctx_->use_certificate_chain(asio::buffer(cert_.cert_pem));
    ssl_ctx_->use_private_key(asio::buffer(cert_.key_pem), ssl::context::pem);
  }
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  base_url_ =
      std::string(options_.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  do_accept();
  thread_ = std::thread([this] { ioc_.run(); });
}

FakeTestRail::Impl::~Impl() {
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
}

void FakeTestRail::Impl::do_accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec) return;  // closed: the server is stopping
    const std::uint64_t id = next_connection_id();
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
    beast::tcp_stream tcp_stream(std::move(socket));
    if (ssl_ctx_) {
      auto session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          beast::ssl_stream<beast::tcp_stream>(std::move(tcp_stream), *ssl_ctx_), *this, id);
      sessions_.push_back(session);
      session->start();
    } else {
      auto session = std::make_shared<Session<beast::tcp_stream>>(std::move(tcp_stream), *this, id);
      sessions_.push_back(session);
      session->start();
    }
    do_accept();
  });
}

json FakeTestRail::Impl::make_run_locked(json in) {
  if (!in.is_object()) throw std::invalid_argument("fake: a run must be a JSON object");
  std::int64_t id = 0;
  if (auto it = in.find("id"); it != in.end() && it->is_number_integer()) {
    id = it->get<std::int64_t>();
  } else {
    id = next_run_id_;
  }
  next_run_id_ = std::max(next_run_id_, id + 1);
  json run = {
      {"id", id},
      {"suite_id", 1},
      {"name", "Run " + std::to_string(id)},
      {"description", nullptr},
      {"milestone_id", nullptr},
      {"assignedto_id", nullptr},
      {"include_all", true},
      {"is_completed", false},
      {"completed_on", nullptr},
      {"config", nullptr},
      {"config_ids", json::array()},
      {"passed_count", 0},
      {"blocked_count", 0},
      {"untested_count", 0},
      {"retest_count", 0},
      {"failed_count", 0},
      {"project_id", 1},
      {"plan_id", nullptr},
      {"created_on", now_},
      {"created_by", 1},
      {"refs", nullptr},
      {"updated_on", now_},
      {"url", base_url_ + "/index.php?/runs/view/" + std::to_string(id)},
  };
  for (int i = 1; i <= 7; ++i) run["custom_status" + std::to_string(i) + "_count"] = 0;
  for (auto& [k, v] : in.items()) run[k] = v;
  run["id"] = id;
  ensure_project_locked(run["project_id"].get<std::int64_t>());
  runs_[id] = run;
  return run;
}

json FakeTestRail::Impl::plan_with_entries_locked(const Plan& plan) const {
  json out = plan.summary;
  out["entries"] = json::array();
  for (const auto& entry : plan.entries) {
    json e = {{"id", entry.id},       {"suite_id", entry.suite_id}, {"name", entry.name},
              {"refs", nullptr},      {"description", nullptr},     {"include_all", true},
              {"runs", json::array()}};
    int index = 1;
    for (auto run_id : entry.run_ids) {
      auto it = runs_.find(run_id);
      if (it == runs_.end()) continue;
      json run = it->second;
      run["entry_id"] = entry.id;
      run["entry_index"] = index++;
      e["runs"].push_back(std::move(run));
    }
    out["entries"].push_back(std::move(e));
  }
  return out;
}

std::pair<int, std::string> FakeTestRail::Impl::paginate(
    const std::vector<const json*>& items, const char* key, const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& params) {
  std::int64_t limit = options_.max_page_size;
  std::int64_t offset = 0;
  std::string filters;
  for (const auto& [k, v] : params) {
    if (k == "limit") {
      auto n = parse_id(v);
      if (!n) return {400, error_body("Field :limit must be a positive integer.")};
      limit = std::min<std::int64_t>(*n, options_.max_page_size);
    } else if (k == "offset") {
      if (v != "0") {
        auto n = parse_id(v);
        if (!n) return {400, error_body("Field :offset must be a non-negative integer.")};
        offset = *n;
      }
    } else {
      filters += "&" + k + "=" + v;
    }
  }
  if (ignore_offset_) offset = 0;
  const auto size = static_cast<std::int64_t>(items.size());
  if (bare_arrays_) {
    // Older servers: `limit` (default and at most 250) and `offset` apply,
    // whatever max_page_size says of the paginated shape.
    limit = kBareMaxLimit;
    for (const auto& [k, v] : params) {
      if (k == "limit") limit = std::min<std::int64_t>(*parse_id(v), kBareMaxLimit);
    }
    json page = json::array();
    for (std::int64_t i = offset; i < std::min(size, offset + limit); ++i) page.push_back(*items[i]);
    return {200, page.dump()};
  }
  // Items are pointers: a listing of 100,000 runs copies one page, not all.
  json page = json::array();
  for (std::int64_t i = offset; i < std::min(size, offset + limit); ++i) page.push_back(*items[i]);
  const std::string link_limit = next_limit_zero_ ? "0" : std::to_string(limit);
  json next = nullptr;
  if (offset + limit < size) {
    next = "/api/v2/" + path + filters + "&limit=" + link_limit +
           "&offset=" + std::to_string(offset + limit);
  }
  json prev = nullptr;
  if (offset > 0) {
    prev = "/api/v2/" + path + filters + "&limit=" + std::to_string(limit) +
           "&offset=" + std::to_string(std::max<std::int64_t>(0, offset - limit));
  }
  json out = {{"offset", offset},
              {"limit", limit},
              {"size", page.size()},
              {"_links", {{"next", next}, {"prev", prev}}},
              {key, std::move(page)}};
  return {200, out.dump()};
}

std::pair<int, std::string> FakeTestRail::Impl::route(const std::string& method,
                                                      const std::string& uri,
                                                      const std::string& body) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= uri.size()) {
    auto end = uri.find('&', start);
    if (end == std::string::npos) end = uri.size();
    parts.push_back(uri.substr(start, end - start));
    start = end + 1;
  }
  const std::string& path = parts[0];
  std::vector<std::pair<std::string, std::string>> params;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    auto eq = parts[i].find('=');
    if (eq == std::string::npos) {
      params.emplace_back(parts[i], "");
    } else {
      params.emplace_back(parts[i].substr(0, eq), parts[i].substr(eq + 1));
    }
  }
  const auto slash = path.find('/');
  const std::string endpoint = path.substr(0, slash);
  const std::string arg = slash == std::string::npos ? "" : path.substr(slash + 1);
  const auto id = parse_id(arg);

  static const std::vector<std::string> kGets = {"get_runs", "get_run", "get_plans", "get_plan"};
  static const std::vector<std::string> kPosts = {"add_run", "update_run", "close_run",
                                                  "delete_run"};
  const bool is_get = std::find(kGets.begin(), kGets.end(), endpoint) != kGets.end();
  const bool is_post = std::find(kPosts.begin(), kPosts.end(), endpoint) != kPosts.end();
  if (!is_get && !is_post) return {404, error_body("Unknown method '" + endpoint + "'")};
  if (is_get && method != "GET") return {400, error_body("This method requires GET.")};
  if (is_post && method != "POST") return {400, error_body("This method requires POST.")};

  auto invalid_run = [] {
    return std::pair{400, error_body("Field :run_id is not a valid test run.")};
  };
  auto is_completed_filter = [&]() -> std::optional<bool> {
    for (const auto& [k, v] : params) {
      if (k == "is_completed") return v == "1" || v == "true";
    }
    return std::nullopt;
  };

  if (endpoint == "get_runs" || endpoint == "get_plans") {
    if (!id || std::find(projects_.begin(), projects_.end(), *id) == projects_.end()) {
      return {400, error_body("Field :project_id is not a valid or accessible project.")};
    }
    const auto completed = is_completed_filter();
    std::vector<const json*> items;
    if (endpoint == "get_runs") {
      for (const auto& [rid, run] : runs_) {
        if (run["project_id"] != *id || !run["plan_id"].is_null()) continue;
        if (completed && run["is_completed"].get<bool>() != *completed) continue;
        items.push_back(&run);
      }
      return paginate(items, "runs", path, params);
    }
    for (const auto& [pid, plan] : plans_) {
      if (plan.summary["project_id"] != *id) continue;
      if (completed && plan.summary["is_completed"].get<bool>() != *completed) continue;
      items.push_back(&plan.summary);
    }
    return paginate(items, "plans", path, params);
  }
  if (endpoint == "get_run") {
    auto it = id ? runs_.find(*id) : runs_.end();
    if (it == runs_.end()) return invalid_run();
    return {200, it->second.dump()};
  }
  if (endpoint == "get_plan") {
    auto it = id ? plans_.find(*id) : plans_.end();
    if (it == plans_.end()) return {400, error_body("Field :plan_id is not a valid test plan.")};
    return {200, plan_with_entries_locked(it->second).dump()};
  }

  // POSTs.
  json input = json::object();
  if (!body.empty()) {
    input = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (input.is_discarded() || !input.is_object()) {
      return {400, error_body("Content-Type and request body must be valid JSON.")};
    }
  }
  if (endpoint == "add_run") {
    if (!id || std::find(projects_.begin(), projects_.end(), *id) == projects_.end()) {
      return {400, error_body("Field :project_id is not a valid or accessible project.")};
    }
    if (!input.contains("name") || !input["name"].is_string()) {
      return {400, error_body("Field :name is a required field.")};
    }
    json run = {{"project_id", *id}};
    for (const char* k : {"suite_id", "name", "description", "milestone_id", "assignedto_id",
                          "include_all", "config_ids", "refs"}) {
      if (input.contains(k)) run[k] = input[k];
    }
    if (input.contains("case_ids") && input["case_ids"].is_array()) {
      run["untested_count"] = input["case_ids"].size();
    }
    return {200, make_run_locked(std::move(run)).dump()};
  }
  auto it = id ? runs_.find(*id) : runs_.end();
  if (it == runs_.end()) return invalid_run();
  json& run = it->second;
  if (!run["plan_id"].is_null()) {
    return {400, error_body("Field :run_id is part of a test plan; use the plan entry methods.")};
  }
  if (endpoint == "delete_run") {
    runs_.erase(it);
    return {200, ""};
  }
  if (run["is_completed"].get<bool>()) {
    return {400, error_body("Field :run_id references a completed test run.")};
  }
  if (endpoint == "update_run") {
    for (const char* k :
         {"name", "description", "milestone_id", "assignedto_id", "include_all", "refs"}) {
      if (input.contains(k)) run[k] = input[k];
    }
    run["updated_on"] = now_;
    return {200, run.dump()};
  }
  // close_run
  run["is_completed"] = true;
  run["completed_on"] = now_;
  run["updated_on"] = now_;
  return {200, run.dump()};
}

Answer FakeTestRail::Impl::handle(const http::request<http::string_body>& req,
                                  std::uint64_t connection) {
  std::lock_guard lock(mu_);
  Request rec;
  rec.method = std::string(req.method_string());
  rec.target = std::string(req.target());
  if (rec.target.starts_with(kApiPrefix)) {
    rec.uri = rec.target.substr(kApiPrefix.size());
    rec.endpoint = rec.uri.substr(0, rec.uri.find_first_of("/&"));
  }
  rec.body = req.body();
  rec.content_type = std::string(req[http::field::content_type]);
  rec.authorization = std::string(req[http::field::authorization]);
  rec.at = std::chrono::steady_clock::now();
  rec.connection = connection;

  Answer answer;
  answer.keep_alive = keep_alive_ && req.keep_alive();
  if (send_date_) answer.date = format_http_date(now_);

  std::optional<Fault> fault;
  for (auto f = faults_.begin(); f != faults_.end(); ++f) {
    if (f->uri_contains.empty() || rec.target.find(f->uri_contains) != std::string::npos) {
      fault = std::move(*f);
      faults_.erase(f);
      break;
    }
  }
  if (fault && fault->kind == Fault::Kind::kStatus) {
    answer.status = fault->status;
    answer.body = fault->body.empty() ? error_body("fake fault") : fault->body;
    answer.retry_after = fault->retry_after;
  } else {
    const std::string expected = "Basic " + runsync::base64_encode(options_.user + ":" + options_.api_key);
    if (rec.authorization != expected) {
      answer.status = 401;
      answer.body =
          error_body("Authentication failed: invalid or missing user/password or session cookie.");
    } else if (rec.uri.empty()) {
      answer.status = 404;
      answer.body = error_body("Not an API v2 path: " + rec.target);
    } else {
      std::tie(answer.status, answer.body) = route(rec.method, rec.uri, rec.body);
      if (legacy_prefix_ && answer.status == 200) answer.body.insert(0, kLegacyPrefix);
    }
    if (fault && fault->kind == Fault::Kind::kDelay) answer.delay = fault->delay;
    if (fault && fault->kind == Fault::Kind::kTruncate) answer.action = Answer::Action::kTruncate;
    if (fault && fault->kind == Fault::Kind::kDrop) answer.action = Answer::Action::kDrop;
  }
  rec.status = answer.action == Answer::Action::kDrop ? 0 : answer.status;
  log_.push_back(std::move(rec));
  cv_.notify_all();
  return answer;
}

// --- FakeTestRail ----------------------------------------------------------

FakeTestRail::FakeTestRail(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
FakeTestRail::FakeTestRail() : FakeTestRail(Options{}) {}
FakeTestRail::~FakeTestRail() = default;

std::string FakeTestRail::base_url() const { return impl_->base_url_; }
std::uint16_t FakeTestRail::port() const { return impl_->port_; }
std::string FakeTestRail::certificate_pem() const { return impl_->cert_.ca_pem; }
const FakeTestRail::Options& FakeTestRail::options() const { return impl_->options_; }

TestRailClientOptions FakeTestRail::client_options() const {
  TestRailClientOptions o;
  o.base_url = base_url();
  o.user = options().user;
  o.api_key = options().api_key;
  o.request_timeout = std::chrono::seconds(5);
  o.max_requests_per_minute = 0;
  return o;
}

void FakeTestRail::add_project(std::int64_t project_id) {
  std::lock_guard lock(impl_->mu_);
  impl_->ensure_project_locked(project_id);
}

nlohmann::json FakeTestRail::add_run(nlohmann::json run) {
  std::lock_guard lock(impl_->mu_);
  return impl_->make_run_locked(std::move(run));
}

nlohmann::json FakeTestRail::add_plan(std::int64_t project_id, const std::string& name,
                                      std::vector<nlohmann::json> runs, bool is_completed) {
  std::lock_guard lock(impl_->mu_);
  auto& s = *impl_;
  const std::int64_t plan_id = s.next_plan_id_++;
  s.ensure_project_locked(project_id);
  Impl::Plan plan;
  plan.summary = {{"id", plan_id},
                  {"name", name},
                  {"description", nullptr},
                  {"milestone_id", nullptr},
                  {"assignedto_id", nullptr},
                  {"is_completed", is_completed},
                  {"completed_on", is_completed ? json(s.now_) : json(nullptr)},
                  {"project_id", project_id},
                  {"created_on", s.now_},
                  {"created_by", 1},
                  {"url", s.base_url_ + "/index.php?/plans/view/" + std::to_string(plan_id)}};
  for (auto& run : runs) {
    if (!run.is_object()) run = json::object();
    run["project_id"] = project_id;
    run["plan_id"] = plan_id;
    if (is_completed && !run.contains("is_completed")) {
      run["is_completed"] = true;
      run["completed_on"] = s.now_;
    }
    Impl::PlanEntry entry;
    entry.id = "00000000-0000-4000-8000-" + std::to_string(100000000000 + s.next_entry_++);
    const json stored = s.make_run_locked(std::move(run));
    entry.name = stored["name"].get<std::string>();
    entry.suite_id =
        stored["suite_id"].is_number_integer() ? stored["suite_id"].get<std::int64_t>() : 1;
    entry.run_ids.push_back(stored["id"].get<std::int64_t>());
    s.runs_[stored["id"].get<std::int64_t>()]["entry_id"] = entry.id;
    s.runs_[stored["id"].get<std::int64_t>()]["entry_index"] = 1;
    plan.entries.push_back(std::move(entry));
  }
  json summary = plan.summary;
  s.plans_[plan_id] = std::move(plan);
  return summary;
}

void FakeTestRail::update_run(std::int64_t run_id, const nlohmann::json& patch) {
  std::lock_guard lock(impl_->mu_);
  auto it = impl_->runs_.find(run_id);
  if (it == impl_->runs_.end()) return;
  for (auto& [k, v] : patch.items()) it->second[k] = v;
}

void FakeTestRail::set_plan_completed(std::int64_t plan_id, bool is_completed) {
  std::lock_guard lock(impl_->mu_);
  auto it = impl_->plans_.find(plan_id);
  if (it == impl_->plans_.end()) return;
  it->second.summary["is_completed"] = is_completed;
  it->second.summary["completed_on"] = is_completed ? json(impl_->now_) : json(nullptr);
}

void FakeTestRail::remove_run(std::int64_t run_id) {
  std::lock_guard lock(impl_->mu_);
  impl_->runs_.erase(run_id);
}

std::optional<nlohmann::json> FakeTestRail::run(std::int64_t run_id) const {
  std::lock_guard lock(impl_->mu_);
  auto it = impl_->runs_.find(run_id);
  if (it == impl_->runs_.end()) return std::nullopt;
  return it->second;
}

std::size_t FakeTestRail::run_count() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->runs_.size();
}

void FakeTestRail::set_now(std::int64_t unix_seconds) {
  std::lock_guard lock(impl_->mu_);
  impl_->now_ = unix_seconds;
}

std::int64_t FakeTestRail::now() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->now_;
}

void FakeTestRail::set_bare_arrays(bool on) {
  std::lock_guard lock(impl_->mu_);
  impl_->bare_arrays_ = on;
}

void FakeTestRail::set_ignore_offset(bool on) {
  std::lock_guard lock(impl_->mu_);
  impl_->ignore_offset_ = on;
}

void FakeTestRail::set_legacy_prefix(bool on) {
  std::lock_guard lock(impl_->mu_);
  impl_->legacy_prefix_ = on;
}

void FakeTestRail::set_keep_alive(bool on) {
  std::lock_guard lock(impl_->mu_);
  impl_->keep_alive_ = on;
}

void FakeTestRail::set_next_limit_zero(bool on) {
  std::lock_guard lock(impl_->mu_);
  impl_->next_limit_zero_ = on;
}

void FakeTestRail::set_send_date(bool on) {
  std::lock_guard lock(impl_->mu_);
  impl_->send_date_ = on;
}

void FakeTestRail::push_fault(Fault fault) {
  std::lock_guard lock(impl_->mu_);
  impl_->faults_.push_back(std::move(fault));
}

void FakeTestRail::fail_next(int status, int count, const std::string& retry_after,
                             const std::string& uri_contains) {
  for (int i = 0; i < count; ++i) {
    Fault f;
    f.kind = Fault::Kind::kStatus;
    f.status = status;
    f.retry_after = retry_after;
    f.uri_contains = uri_contains;
    push_fault(std::move(f));
  }
}

void FakeTestRail::delay_next(std::chrono::milliseconds delay, const std::string& uri_contains) {
  Fault f;
  f.kind = Fault::Kind::kDelay;
  f.delay = delay;
  f.uri_contains = uri_contains;
  push_fault(std::move(f));
}

void FakeTestRail::truncate_next(const std::string& uri_contains) {
  Fault f;
  f.kind = Fault::Kind::kTruncate;
  f.uri_contains = uri_contains;
  push_fault(std::move(f));
}

void FakeTestRail::drop_next(const std::string& uri_contains) {
  Fault f;
  f.kind = Fault::Kind::kDrop;
  f.uri_contains = uri_contains;
  push_fault(std::move(f));
}

std::size_t FakeTestRail::pending_faults() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->faults_.size();
}

void FakeTestRail::close_idle_connections() {
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    int remaining = 0;
    bool listed = false;
  };
  auto pending = std::make_shared<Pending>();
  asio::post(impl_->ioc_, [this, pending] {
    std::vector<std::shared_ptr<SessionBase>> live;
    for (auto& weak : impl_->sessions_) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
    {
      std::lock_guard lock(pending->mu);
      pending->remaining = static_cast<int>(live.size());
      pending->listed = true;
    }
    pending->cv.notify_all();
    for (auto& session : live) {
      session->close_when_idle([pending] {
        std::lock_guard lock(pending->mu);
        --pending->remaining;
        pending->cv.notify_all();
      });
    }
  });
  // A connection busy with a (possibly delayed) answer closes after it; do
  // not wait for that forever.
  std::unique_lock lock(pending->mu);
  pending->cv.wait_for(lock, std::chrono::seconds(5),
                       [&] { return pending->listed && pending->remaining <= 0; });
}

std::vector<FakeTestRail::Request> FakeTestRail::requests() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->log_;
}

std::size_t FakeTestRail::request_count() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->log_.size();
}

int FakeTestRail::count(std::string_view endpoint) const {
  std::lock_guard lock(impl_->mu_);
  return static_cast<int>(std::count_if(impl_->log_.begin(), impl_->log_.end(),
                                        [&](const Request& r) { return r.endpoint == endpoint; }));
}

std::uint64_t FakeTestRail::connections_accepted() const { return impl_->connections_; }

void FakeTestRail::clear_requests() {
  std::lock_guard lock(impl_->mu_);
  impl_->log_.clear();
}

bool FakeTestRail::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu_);
  return impl_->cv_.wait_for(lock, timeout, [&] { return impl_->log_.size() >= n; });
}

}  // namespace runsync::test
