// Parsing of TestRail API v2 answers (reference/upstream-facts.md) into
// observations, list pages and plans, and the rules for following
// pagination links. Pure: no I/O, no logging; safe to call from any thread.
//
// Tolerant of what real servers send (unknown fields, fields that older
// servers omit, the legacy "USER AUTHENTICATION SUCCESSFUL!" prefix, the
// bare-array answers of servers before pagination) and strict about shape:
// a field present with the wrong type is an error naming the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/run.h"
#include "core/status.h"

namespace runsync {

// Some legacy servers put this in front of every body (trcli strips it).
inline constexpr std::string_view kLegacyAuthPrefix = "USER AUTHENTICATION SUCCESSFUL!\n";

// The page size TestRail uses by default and at most; also what a `limit=0`
// in a `_links.next` is rewritten to.
inline constexpr int kApiPageSize = 250;

// `body` without the legacy prefix (a view into `body`).
std::string_view strip_legacy_prefix(std::string_view body);

// An API answer as a JSON document, read after the legacy prefix. The
// parsers below start here. On error the message is "empty body", "body
// nests deeper than 32 levels" (kMaxJsonDepth), refuse_nul_byte's (a NUL
// byte, which would hide what follows it; its offset counts from after
// the prefix) or "body is not valid JSON".
StatusOr<nlohmann::json> parse_api_body(std::string_view body);

// Maps one TestRail run object (get_run, an element of get_runs, or a run
// inside a plan entry) to an observation made at `observed_at` (unix s).
//
// Sets the fields the object carries: run_id, project_id, name,
// description, suite_id, milestone_id, assignedto_id, plan_id, config,
// refs, url, created_on, created_by, completed_on and the passed, failed,
// blocked, untested, retest and custom_status1..7 counts. A JSON null is
// observed as a null Value; an absent key leaves the field unset. When
// `plan_id` is null the run is in no plan, so plan_name is observed null
// too; when it is set, plan_name is left unset (the run object does not
// carry it; see observation_from_plan_run). `is_completed` true claims
// StateClaim::kEnded, false kActive, absent or null kNone. Webhook-only
// fields and cases_count (TestRail has no such field) are never set.
//
// On error (not an object, `id` missing or not a positive integer, a known
// field of the wrong type) the message names the field, e.g.
// "run.name must be a string or null".
StatusOr<Observation> observation_from_api_run(const nlohmann::json& run, std::int64_t observed_at,
                                               Source source);

// One page of a bulk endpoint. `next` is `_links.next` as the server sent it
// (pass it to next_link_to_uri); nullopt on the last page and for the bare
// arrays of older servers, which hold the whole list.
struct RunsPage {
  std::vector<nlohmann::json> runs;  // each element is a JSON object
  std::optional<std::string> next;
  bool bare = false;  // the server answered a bare array
};

struct PlansPage {
  std::vector<nlohmann::json> plans;  // each element is a JSON object; entries omitted
  std::optional<std::string> next;
  bool bare = false;  // the server answered a bare array
};

// Parses a get_runs answer: the paginated object (`runs` plus `_links.next`)
// or a bare JSON array, either after the legacy prefix. On error (not JSON,
// neither shape, an element that is not an object, `_links.next` neither a
// string nor null, or an {"error": ...} object) the message says which.
StatusOr<RunsPage> parse_runs_page(std::string_view body);

// A get_runs page mapped to observations.
struct ObservedRunsPage {
  std::vector<Observation> observations;  // in page order
  std::optional<std::string> next;        // as RunsPage::next
  bool bare = false;                      // as RunsPage::bare
  // Set when the page itself is well formed but a run in it is not: the
  // message observation_from_api_run gives for the first such run.
  // `observations` then holds only the runs before it.
  std::optional<std::string> run_error;
};

// parse_runs_page(body), then observation_from_api_run(run, observed_at,
// source) for each run in order. The page is project `project_id`'s
// listing (get_runs/{project_id}), so a run that carries no project_id
// (absent or null, as some servers' and recorded answers have it) is
// observed in that project, and is polled, refreshed and judged for
// deletion with its runs; a run's own project_id is kept. On a page error
// the Status carries parse_runs_page's message; on a run error `run_error`
// is set.
StatusOr<ObservedRunsPage> observe_runs_page(std::string_view body, std::int64_t project_id,
                                             std::int64_t observed_at, Source source);

// The same for get_plans (key `plans`).
StatusOr<PlansPage> parse_plans_page(std::string_view body);

// A get_plan answer with the runs of all its entries flattened in entry
// order (each run object as the server sent it: with entry_id, entry_index,
// config, config_ids).
struct PlanRuns {
  std::int64_t plan_id = 0;
  std::string plan_name;
  bool is_completed = false;
  std::vector<nlohmann::json> runs;
};

// Parses a get_plan answer. `entries` or an entry's `runs` may be absent or
// null (no runs). On error (not an object, `id` not a positive integer,
// `name` not a string, `is_completed` not a boolean, an entry or run that
// is not an object) the message names the problem.
StatusOr<PlanRuns> parse_plan(std::string_view body);

// observation_from_api_run for a run of `plan`, which also observes
// plan_id and plan_name from the plan (the plan's word wins over the run
// object's plan_id).
StatusOr<Observation> observation_from_plan_run(const nlohmann::json& run, const PlanRuns& plan,
                                                std::int64_t observed_at, Source source);

// Whether an answer to get_run or get_plan says the run or plan does not
// exist (SPEC §6 rule 4): TestRail answers 400 with "Field :run_id is not a
// valid test run." (or plan), in any case.
bool answer_says_missing(int http_status, std::string_view error_message);

// The message of an error answer: the string in {"error": "..."}, else the
// body's first 200 bytes with surrounding white space trimmed, else
// "empty body". Never fails.
std::string api_error_message(std::string_view body);

// The API path of `uri` without any prefix: accepts "get_runs/1&limit=250",
// "/api/v2/get_runs/1&...", "index.php?/api/v2/get_runs/1&..." or an
// absolute URL containing "/api/v2/", and returns "get_runs/1&limit=250".
std::string api_path(std::string_view uri);

// Walks the pages of one listing of a bulk endpoint (get_runs, get_plans),
// whichever shape the server answers (SPEC §5). Every request carries an
// explicit `limit` and `offset`. After a paginated object it follows
// `_links.next` and stops when there is none. After a bare array (older
// servers, which still apply `limit` and `offset`) it asks for the next
// offset while a page comes back full (kApiPageSize items) and stops on a
// shorter page; a longer one means the server ignores `limit` and sent the
// whole list. Pure; one per listing.
class PageCursor {
 public:
  // The most pages one listing may take: a server whose pages never end.
  static constexpr int kMaxPages = 100000;

  // `base`: the endpoint and its filters, e.g. "get_runs/1&is_completed=0".
  explicit PageCursor(std::string base);

  // The uri of the page to request next; nullopt once the listing is done.
  const std::optional<std::string>& uri() const { return uri_; }

  // Takes the page just fetched from uri(): its shape and `_links.next`
  // (see RunsPage) and the ids of its items in order. Fails, and the
  // listing cannot be trusted as complete, when a non-empty page repeats
  // the previous one (a server ignoring `offset`), when a next link
  // repeats, or past kMaxPages.
  Status advance(bool bare, const std::optional<std::string>& next,
                 std::vector<std::int64_t> ids);

 private:
  std::string base_;
  std::optional<std::string> uri_;
  std::int64_t offset_ = 0;
  int pages_ = 0;
  std::vector<std::int64_t> previous_ids_;
  std::unordered_set<std::string> seen_uris_;
};

// Turns `_links.next` ("/api/v2/get_runs/1&limit=250&offset=250") into the
// uri to request ("index.php?/api/v2/get_runs/1&limit=250&offset=250"). A
// `limit=0` parameter becomes `limit=250`, as trcli does (following it
// unchanged gets 400 from the server).
std::string next_link_to_uri(const std::string& next);

}  // namespace runsync
