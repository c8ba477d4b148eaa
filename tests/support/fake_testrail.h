// A fake TestRail instance for tests: a real HTTP/1.1 server (optionally
// HTTPS with a self-signed certificate made at start) on 127.0.0.1, port 0,
// serving the API v2 endpoints runsync uses the way
// reference/upstream-facts.md describes them, with scripted faults and a log
// of every request.
//
// URL form: `{base_url()}/index.php?/api/v2/get_runs/1&limit=250&offset=0`.
// Served: get_runs/{project} (only runs not in a plan; is_completed filter;
// limit/offset pagination with a relative `_links.next`, or a bare array
// that applies limit/offset),
// get_run/{id}, get_plans/{project} (paginated, entries omitted),
// get_plan/{id} (entries[].runs[]), and the POSTs add_run/{project},
// update_run/{id}, close_run/{id}, delete_run/{id} (which change the state
// and return the run; delete returns an empty body). Errors answer
// {"error": "..."}: 400 for unknown entities and bad input, 401 for wrong
// Basic credentials, 404 for unknown endpoints. Every answer carries a
// `Date` header from the settable clock.
//
// Thread safety: every public method may be called from any thread while
// the server runs on its own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/testrail/testrail_client.h"

namespace runsync::test {

class FakeTestRail {
 public:
  struct Options {
    std::string user = "ci@example.com";
    std::string api_key = "fake-api-key";
    // Serve HTTPS with a fresh self-signed certificate whose subjectAltName
    // lists `cert_hosts` (IP literals or DNS names).
    bool tls = false;
    std::vector<std::string> cert_hosts = {"127.0.0.1"};
    // Issue the certificate from a fresh CA instead of self-signing it;
    // certificate_pem() is then the CA's.
    bool ca_issued = false;
    bool expired = false;              // the certificate's validity ended a day ago
    int max_page_size = 250;           // larger `limit`s are clamped to this
    std::int64_t now = 1'700'000'000;  // initial clock (unix s)
  };

  // A scripted misbehaviour, consumed by the first request that matches
  // `uri_contains` (any request when empty), in the order pushed.
  struct Fault {
    enum class Kind {
      kStatus,    // answer `status` (+ Retry-After) with `body`, change nothing
      kDelay,     // handle the request normally, answer after `delay`
      kTruncate,  // handle normally, send the headers and half the body, close
      kDrop,      // handle normally, then close without answering (lost answer)
    };
    Kind kind = Kind::kStatus;
    int status = 500;
    std::string retry_after;  // kStatus: sent as Retry-After when not empty
    std::string body;         // kStatus: default {"error": "fake fault"}
    std::chrono::milliseconds delay{0};
    std::string uri_contains;
  };

  struct Request {
    std::string method;
    std::string target;    // as received, e.g. "/index.php?/api/v2/get_run/7"
    std::string uri;       // API path: "get_run/7"; empty when not an API target
    std::string endpoint;  // "get_run"
    std::string body;
    std::string content_type;
    std::string authorization;
    std::chrono::steady_clock::time_point at;  // when the request was read
    int status = 0;                            // answered status; 0 for kDrop
    std::uint64_t connection = 0;              // 1-based number of the connection it came on
  };

  explicit FakeTestRail(Options options);
  FakeTestRail();
  ~FakeTestRail();  // stops the server; in-flight answers are abandoned
  FakeTestRail(const FakeTestRail&) = delete;
  FakeTestRail& operator=(const FakeTestRail&) = delete;

  std::string base_url() const;  // "http://127.0.0.1:PORT" (https:// with tls)
  std::uint16_t port() const;
  // The certificate a client must trust (the self-signed one, or the CA's
  // with ca_issued); empty without tls.
  std::string certificate_pem() const;
  const Options& options() const;
  // Options for a client of this server: its URL and credentials, a 5 s
  // request timeout and no request budget; tests change what they need.
  TestRailClientOptions client_options() const;

  // --- data ---------------------------------------------------------------
  void add_project(std::int64_t project_id);
  // Stores a run: `run` must carry project_id; missing keys get TestRail's
  // defaults (id auto-assigned, counts 0, is_completed false, url, ...).
  // Returns the stored object.
  nlohmann::json add_run(nlohmann::json run);
  // Creates a plan in `project_id` with one entry per run in `runs` (each
  // stored like add_run, with plan_id set). Returns the plan summary.
  nlohmann::json add_plan(std::int64_t project_id, const std::string& name,
                          std::vector<nlohmann::json> runs, bool is_completed = false);
  // Merges `patch` into a stored run (no-op when unknown).
  void update_run(std::int64_t run_id, const nlohmann::json& patch);
  void set_plan_completed(std::int64_t plan_id, bool is_completed);
  void remove_run(std::int64_t run_id);
  std::optional<nlohmann::json> run(std::int64_t run_id) const;
  std::size_t run_count() const;

  // --- behaviour ----------------------------------------------------------
  void set_now(std::int64_t unix_seconds);  // Date header and timestamps
  std::int64_t now() const;
  // get_runs/get_plans answer a bare array, as older servers do: they still
  // apply `limit` (default and at most 250, whatever max_page_size) and
  // `offset`, and send no next link.
  void set_bare_arrays(bool on);
  void set_ignore_offset(bool on);    // listings answer from offset 0 whatever was asked
  void set_legacy_prefix(bool on);    // prefix bodies with "USER AUTHENTICATION SUCCESSFUL!\n"
  void set_keep_alive(bool on);       // false: close the connection after each answer
  void set_next_limit_zero(bool on);  // write `limit=0` into `_links.next` (as some servers do)
  void set_send_date(bool on);        // false: omit the Date header

  // --- faults -------------------------------------------------------------
  void push_fault(Fault fault);
  void fail_next(int status, int count = 1, const std::string& retry_after = "",
                 const std::string& uri_contains = "");
  void delay_next(std::chrono::milliseconds delay, const std::string& uri_contains = "");
  void truncate_next(const std::string& uri_contains = "");
  void drop_next(const std::string& uri_contains = "");
  std::size_t pending_faults() const;
  // Closes every open connection once it waits for its next request, as a
  // server's keep-alive timeout does; returns once they are closed (waiting
  // at most 5 s for connections busy with an answer).
  void close_idle_connections();

  // --- recording ----------------------------------------------------------
  std::vector<Request> requests() const;
  std::size_t request_count() const;
  int count(std::string_view endpoint) const;  // requests to e.g. "get_runs"
  std::uint64_t connections_accepted() const;
  void clear_requests();
  // Waits until at least `n` requests were read; false on timeout.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace runsync::test
