#include "core/testrail_api.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <unordered_set>
#include <utility>

#include "core/json_text.h"
#include "core/webhook_event.h"  // json_depth_within, kMaxJsonDepth

namespace runsync {
namespace {

using nlohmann::json;

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

Status type_error(std::string_view path, std::string_view key, std::string_view want) {
  std::string m(path);
  m.append(key).append(" must be ").append(want);
  return Status::error(std::move(m));
}

// A positive int64 from `v`, or nullopt when `v` is anything else.
std::optional<std::int64_t> positive_int(const json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u == 0 || u > static_cast<std::uint64_t>(kInt64Max)) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_integer() && v.get<std::int64_t>() > 0) return v.get<std::int64_t>();
  return std::nullopt;
}

// Absent → unset; null → null Value; integer → its value; else an error.
Status take_int(const json& obj, std::string_view key, Field f, Observation& obs) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::ok();
  if (it->is_null()) {
    obs.set(f, Value{});
  } else if (it->is_number_unsigned() &&
             it->get<std::uint64_t>() > static_cast<std::uint64_t>(kInt64Max)) {
    return type_error("run.", key, "an integer within 64 bits");
  } else if (it->is_number_integer()) {
    obs.set(f, Value{it->get<std::int64_t>()});
  } else {
    return type_error("run.", key, "an integer or null");
  }
  if (field_info(f).group == FieldGroup::kCounts && !is_valid_count(*obs.get(f))) {
    obs.set(f, Value{});
    return type_error("run.", key, "an integer >= 0 or null");
  }
  return Status::ok();
}

Status take_text(const json& obj, std::string_view key, Field f, Observation& obs) {
  auto it = obj.find(key);
  if (it == obj.end()) return Status::ok();
  if (it->is_null()) {
    obs.set(f, Value{});
  } else if (it->is_string()) {
    obs.set(f, Value{it->get<std::string>()});
  } else {
    return type_error("run.", key, "a string or null");
  }
  return Status::ok();
}

struct IntKey {
  const char* key;
  Field field;
};
constexpr IntKey kIntKeys[] = {
    {"project_id", Field::kProjectId},
    {"suite_id", Field::kSuiteId},
    {"milestone_id", Field::kMilestoneId},
    {"assignedto_id", Field::kAssignedtoId},
    {"plan_id", Field::kPlanId},
    {"created_on", Field::kCreatedOn},
    {"created_by", Field::kCreatedBy},
    {"completed_on", Field::kCompletedOn},
    {"passed_count", Field::kPassedCount},
    {"failed_count", Field::kFailedCount},
    {"blocked_count", Field::kBlockedCount},
    {"untested_count", Field::kUntestedCount},
    {"retest_count", Field::kRetestCount},
    {"custom_status1_count", Field::kCustomStatus1Count},
    {"custom_status2_count", Field::kCustomStatus2Count},
    {"custom_status3_count", Field::kCustomStatus3Count},
    {"custom_status4_count", Field::kCustomStatus4Count},
    {"custom_status5_count", Field::kCustomStatus5Count},
    {"custom_status6_count", Field::kCustomStatus6Count},
    {"custom_status7_count", Field::kCustomStatus7Count},
};

struct TextKey {
  const char* key;
  Field field;
};
constexpr TextKey kTextKeys[] = {
    {"name", Field::kName},     {"description", Field::kDescription},
    {"config", Field::kConfig}, {"refs", Field::kRefs},
    {"url", Field::kUrl},
};

struct ListPage {
  std::vector<json> items;
  std::optional<std::string> next;
  bool bare = false;
};

// Shared by get_runs and get_plans: `key` names the array in the paginated
// object.
StatusOr<ListPage> parse_list_page(std::string_view body, const char* key) {
  auto doc = parse_api_body(body);
  if (!doc) return doc.status();
  ListPage page;
  json* items = nullptr;
  if (doc->is_array()) {
    items = &*doc;
    page.bare = true;
  } else if (doc->is_object()) {
    auto it = doc->find(key);
    if (it == doc->end()) {
      if (auto err = doc->find("error"); err != doc->end() && err->is_string()) {
        return Status::error("API error: " + err->get<std::string>());
      }
      return Status::error(std::string("page has no `") + key + "` array");
    }
    if (!it->is_array()) return Status::error(std::string("`") + key + "` must be an array");
    items = &*it;
    if (auto links = doc->find("_links"); links != doc->end() && !links->is_null()) {
      if (!links->is_object()) return Status::error("`_links` must be an object");
      if (auto next = links->find("next"); next != links->end() && !next->is_null()) {
        if (!next->is_string()) return Status::error("`_links.next` must be a string or null");
        page.next = next->get<std::string>();
      }
    }
  } else {
    return Status::error(std::string("body must be a JSON array or an object with `") + key + "`");
  }
  page.items.reserve(items->size());
  for (std::size_t i = 0; i < items->size(); ++i) {
    if (!(*items)[i].is_object()) {
      return Status::error(std::string(key) + "[" + std::to_string(i) + "] must be an object");
    }
    page.items.push_back(std::move((*items)[i]));
  }
  return page;
}

}  // namespace

StatusOr<ObservedRunsPage> observe_runs_page(std::string_view body, std::int64_t project_id,
                                             std::int64_t observed_at, Source source) {
  auto page = parse_runs_page(body);
  if (!page) return page.status();
  ObservedRunsPage out;
  out.next = std::move(page->next);
  out.bare = page->bare;
  out.observations.reserve(page->runs.size());
  for (const auto& run : page->runs) {
    auto obs = observation_from_api_run(run, observed_at, source);
    if (!obs) {
      out.run_error = obs.message();
      break;
    }
    const auto& listed_in = obs->get(Field::kProjectId);
    if (!listed_in || is_null(*listed_in)) obs->set(Field::kProjectId, Value{project_id});
    out.observations.push_back(std::move(obs).value());
  }
  return out;
}

std::string_view strip_legacy_prefix(std::string_view body) {
  if (body.starts_with(kLegacyAuthPrefix)) body.remove_prefix(kLegacyAuthPrefix.size());
  return body;
}

StatusOr<json> parse_api_body(std::string_view body) {
  body = strip_legacy_prefix(body);
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Status::error("empty body");
  }
  if (!json_depth_within(body, kMaxJsonDepth)) {
    return Status::error("body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  if (Status s = refuse_nul_byte(body); !s.is_ok()) return s;
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::error("body is not valid JSON");
  return doc;
}

StatusOr<Observation> observation_from_api_run(const json& run, std::int64_t observed_at,
                                               Source source) {
  if (!run.is_object()) return Status::error("run must be an object");
  auto id = run.find("id");
  if (id == run.end()) return Status::error("run.id is missing");
  auto run_id = positive_int(*id);
  if (!run_id) return Status::error("run.id must be a positive integer");

  Observation obs;
  obs.run_id = *run_id;
  obs.source = source;
  obs.observed_at = observed_at;
  for (const auto& k : kIntKeys) {
    Status s = take_int(run, k.key, k.field, obs);
    if (!s) return s;
  }
  for (const auto& k : kTextKeys) {
    Status s = take_text(run, k.key, k.field, obs);
    if (!s) return s;
  }
  if (const auto& plan = obs.get(Field::kPlanId); plan && is_null(*plan)) {
    obs.set(Field::kPlanName, Value{});
  }
  if (auto it = run.find("is_completed"); it != run.end() && !it->is_null()) {
    bool completed = false;
    if (it->is_boolean()) {
      completed = it->get<bool>();
    } else if (it->is_number_integer() &&
               (it->get<std::int64_t>() == 0 || it->get<std::int64_t>() == 1)) {
      completed = it->get<std::int64_t>() == 1;  // some servers send 0/1
    } else {
      return Status::error("run.is_completed must be a boolean or null");
    }
    obs.state = completed ? StateClaim::kEnded : StateClaim::kActive;
  }
  return obs;
}

StatusOr<RunsPage> parse_runs_page(std::string_view body) {
  auto page = parse_list_page(body, "runs");
  if (!page) return page.status();
  return RunsPage{std::move(page->items), std::move(page->next), page->bare};
}

StatusOr<PlansPage> parse_plans_page(std::string_view body) {
  auto page = parse_list_page(body, "plans");
  if (!page) return page.status();
  return PlansPage{std::move(page->items), std::move(page->next), page->bare};
}

StatusOr<PlanRuns> parse_plan(std::string_view body) {
  auto doc = parse_api_body(body);
  if (!doc) return doc.status();
  if (!doc->is_object()) return Status::error("plan must be an object");
  PlanRuns plan;
  auto id = doc->find("id");
  if (id == doc->end()) {
    if (auto err = doc->find("error"); err != doc->end() && err->is_string()) {
      return Status::error("API error: " + err->get<std::string>());
    }
    return Status::error("plan.id is missing");
  }
  auto plan_id = positive_int(*id);
  if (!plan_id) return Status::error("plan.id must be a positive integer");
  plan.plan_id = *plan_id;
  if (auto name = doc->find("name"); name != doc->end() && !name->is_null()) {
    if (!name->is_string()) return Status::error("plan.name must be a string");
    plan.plan_name = name->get<std::string>();
  }
  if (auto done = doc->find("is_completed"); done != doc->end() && !done->is_null()) {
    if (!done->is_boolean()) return Status::error("plan.is_completed must be a boolean");
    plan.is_completed = done->get<bool>();
  }
  auto entries = doc->find("entries");
  if (entries == doc->end() || entries->is_null()) return plan;
  if (!entries->is_array()) return Status::error("plan.entries must be an array");
  for (std::size_t e = 0; e < entries->size(); ++e) {
    json& entry = (*entries)[e];
    const std::string where = "plan.entries[" + std::to_string(e) + "]";
    if (!entry.is_object()) return Status::error(where + " must be an object");
    auto runs = entry.find("runs");
    if (runs == entry.end() || runs->is_null()) continue;
    if (!runs->is_array()) return Status::error(where + ".runs must be an array");
    for (std::size_t r = 0; r < runs->size(); ++r) {
      if (!(*runs)[r].is_object()) {
        return Status::error(where + ".runs[" + std::to_string(r) + "] must be an object");
      }
      plan.runs.push_back(std::move((*runs)[r]));
    }
  }
  return plan;
}

StatusOr<Observation> observation_from_plan_run(const json& run, const PlanRuns& plan,
                                                std::int64_t observed_at, Source source) {
  auto obs = observation_from_api_run(run, observed_at, source);
  if (!obs) return obs;
  obs->set(Field::kPlanId, Value{plan.plan_id});
  obs->set(Field::kPlanName, Value{plan.plan_name});
  return obs;
}

bool answer_says_missing(int http_status, std::string_view error_message) {
  if (http_status != 400) return false;
  std::string lower(error_message);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("is not a valid") != std::string::npos;
}

std::string api_error_message(std::string_view body) {
  body = strip_legacy_prefix(body);
  if (json_depth_within(body, kMaxJsonDepth)) {
    json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object()) {
      if (auto err = doc.find("error"); err != doc.end() && err->is_string()) {
        return err->get<std::string>();
      }
    }
  }
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = body.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return "empty body";
  body.remove_prefix(first);
  body = body.substr(0, 200);
  body.remove_suffix(body.size() - (body.find_last_not_of(kSpace) + 1));
  return std::string(body);
}

std::string api_path(std::string_view uri) {
  constexpr std::string_view kMarker = "/api/v2/";
  if (auto pos = uri.find(kMarker); pos != std::string_view::npos) {
    uri.remove_prefix(pos + kMarker.size());
  } else if (uri.starts_with(kMarker.substr(1))) {
    uri.remove_prefix(kMarker.size() - 1);
  }
  while (uri.starts_with('/')) uri.remove_prefix(1);
  return std::string(uri);
}

std::string next_link_to_uri(const std::string& next) {
  const std::string path = api_path(next);
  std::string out = "index.php?/api/v2/";
  std::size_t start = 0;
  bool first = true;
  while (start <= path.size()) {
    auto end = path.find('&', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (!first) out.push_back('&');
    if (!first && part == "limit=0") {
      out.append("limit=").append(std::to_string(kApiPageSize));
    } else {
      out.append(part);
    }
    first = false;
    start = end + 1;
  }
  return out;
}

PageCursor::PageCursor(std::string base) : base_(std::move(base)) {
  uri_ = base_ + "&limit=" + std::to_string(kApiPageSize) + "&offset=0";
}

Status PageCursor::advance(bool bare, const std::optional<std::string>& next,
                           std::vector<std::int64_t> ids) {
  const std::string listing = base_.substr(0, base_.find('/'));
  if (!uri_) return Status::error(listing + ": the listing was already complete");
  ++pages_;
  if (!ids.empty() && ids == previous_ids_) {
    uri_.reset();
    return Status::error(listing + " answered page " + std::to_string(pages_) +
                         " the same as the one before: the server ignores `offset`");
  }
  seen_uris_.insert(*uri_);
  previous_ids_ = std::move(ids);
  const auto count = static_cast<std::int64_t>(previous_ids_.size());
  if (bare) {
    offset_ += count;
    uri_.reset();
    if (count == kApiPageSize) {
      uri_ = base_ + "&limit=" + std::to_string(kApiPageSize) + "&offset=" + std::to_string(offset_);
    }
  } else {
    uri_.reset();
    if (next) uri_ = next_link_to_uri(*next);
  }
  if (!uri_) return Status::ok();
  if (seen_uris_.contains(*uri_) || pages_ >= kMaxPages) {
    const std::string repeated = *uri_;
    uri_.reset();
    return Status::error(listing + " pagination does not end (next page " + repeated +
                         " repeats)");
  }
  return Status::ok();
}

}  // namespace runsync
