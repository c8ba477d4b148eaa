#include "core/testrail_api.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace runsync {
namespace {

using nlohmann::json;

// The run of the official get_run example, plus fields newer servers send.
json example_run() {
  return json::parse(R"({
    "id": 81, "suite_id": 4, "name": "File Formats", "description": "Nightly",
    "milestone_id": 7, "assignedto_id": 6, "include_all": false, "is_completed": false,
    "completed_on": null, "config": "Firefox, Ubuntu 12", "config_ids": [2, 6],
    "passed_count": 2, "blocked_count": 0, "untested_count": 3, "retest_count": 1,
    "failed_count": 2, "custom_status1_count": 0, "custom_status2_count": 0,
    "custom_status3_count": 0, "custom_status4_count": 0, "custom_status5_count": 0,
    "custom_status6_count": 0, "custom_status7_count": 5, "project_id": 1, "plan_id": null,
    "created_on": 1393845644, "created_by": 1, "refs": "SAN-1", "updated_on": 1393845700,
    "url": "https://example.testrail.io/index.php?/runs/view/81",
    "some_future_field": {"nested": [1, 2, 3]}
  })");
}

Observation must_map(const json& run, std::int64_t at = 1000) {
  auto obs = observation_from_api_run(run, at, Source::kPoll);
  EXPECT_TRUE(obs.is_ok()) << obs.message();
  return obs.is_ok() ? obs.value() : Observation{};
}

TEST(ObservationFromApiRun, MapsEveryField) {
  const Observation obs = must_map(example_run(), 1234);
  EXPECT_EQ(obs.run_id, 81);
  EXPECT_EQ(obs.source, Source::kPoll);
  EXPECT_EQ(obs.observed_at, 1234);
  EXPECT_EQ(obs.state, StateClaim::kActive);

  struct Expect {
    Field field;
    Value value;
  };
  const std::vector<Expect> table = {
      {Field::kProjectId, std::int64_t{1}},
      {Field::kName, std::string("File Formats")},
      {Field::kDescription, std::string("Nightly")},
      {Field::kSuiteId, std::int64_t{4}},
      {Field::kMilestoneId, std::int64_t{7}},
      {Field::kAssignedtoId, std::int64_t{6}},
      {Field::kPlanId, Value{}},
      {Field::kPlanName, Value{}},
      {Field::kConfig, std::string("Firefox, Ubuntu 12")},
      {Field::kRefs, std::string("SAN-1")},
      {Field::kUrl, std::string("https://example.testrail.io/index.php?/runs/view/81")},
      {Field::kCreatedOn, std::int64_t{1393845644}},
      {Field::kCreatedBy, std::int64_t{1}},
      {Field::kCompletedOn, Value{}},
      {Field::kPassedCount, std::int64_t{2}},
      {Field::kFailedCount, std::int64_t{2}},
      {Field::kBlockedCount, std::int64_t{0}},
      {Field::kUntestedCount, std::int64_t{3}},
      {Field::kRetestCount, std::int64_t{1}},
      {Field::kCustomStatus1Count, std::int64_t{0}},
      {Field::kCustomStatus7Count, std::int64_t{5}},
  };
  for (const auto& e : table) {
    const auto& got = obs.get(e.field);
    ASSERT_TRUE(got.has_value()) << field_info(e.field).column;
    EXPECT_EQ(*got, e.value) << field_info(e.field).column;
  }
}

TEST(ObservationFromApiRun, NeverSetsWebhookOnlyFieldsNorCasesCount) {
  const Observation obs = must_map(example_run());
  for (const auto& info : all_fields()) {
    if (info.webhook_only) {
      EXPECT_FALSE(obs.get(info.field).has_value()) << info.column;
    }
  }
  EXPECT_FALSE(obs.get(Field::kCasesCount).has_value());
  EXPECT_FALSE(obs.cases_added.has_value());
  // The state column is the reconciler's to decide from the claim.
  EXPECT_FALSE(obs.get(Field::kState).has_value());
}

TEST(ObservationFromApiRun, StateClaimFromIsCompleted) {
  struct Case {
    json is_completed;
    StateClaim want;
  };
  const std::vector<Case> cases = {
      {true, StateClaim::kEnded}, {false, StateClaim::kActive}, {1, StateClaim::kEnded},
      {0, StateClaim::kActive},   {nullptr, StateClaim::kNone},
  };
  for (const auto& c : cases) {
    json run = example_run();
    run["is_completed"] = c.is_completed;
    EXPECT_EQ(must_map(run).state, c.want) << c.is_completed.dump();
  }
  json run = example_run();
  run.erase("is_completed");
  EXPECT_EQ(must_map(run).state, StateClaim::kNone);
}

TEST(ObservationFromApiRun, MissingOptionalFieldsStayUnset) {
  json run = {{"id", 5}, {"name", "old server"}, {"is_completed", true}, {"completed_on", 99}};
  const Observation obs = must_map(run);
  EXPECT_EQ(obs.run_id, 5);
  EXPECT_EQ(obs.state, StateClaim::kEnded);
  EXPECT_EQ(*obs.get(Field::kCompletedOn), Value{std::int64_t{99}});
  EXPECT_FALSE(obs.get(Field::kRefs).has_value());
  EXPECT_FALSE(obs.get(Field::kPlanId).has_value());
  EXPECT_FALSE(obs.get(Field::kPlanName).has_value());
  EXPECT_FALSE(obs.get(Field::kCustomStatus3Count).has_value());
}

TEST(ObservationFromApiRun, RunInAPlanLeavesPlanNameUnset) {
  json run = example_run();
  run["plan_id"] = 12;
  const Observation obs = must_map(run);
  EXPECT_EQ(*obs.get(Field::kPlanId), Value{std::int64_t{12}});
  EXPECT_FALSE(obs.get(Field::kPlanName).has_value());
}

TEST(ObservationFromApiRun, RejectsBadShapes) {
  struct Case {
    const char* name;
    json run;
    const char* message_part;
  };
  auto with = [](const char* key, json value) {
    json r = example_run();
    r[key] = std::move(value);
    return r;
  };
  json no_id = example_run();
  no_id.erase("id");
  const std::vector<Case> cases = {
      {"not an object", json::array({1}), "object"},
      {"id missing", no_id, "run.id"},
      {"id string", with("id", "81"), "run.id"},
      {"id zero", with("id", 0), "run.id"},
      {"id negative", with("id", -3), "run.id"},
      {"id float", with("id", 1.5), "run.id"},
      {"name number", with("name", 3), "run.name"},
      {"count string", with("passed_count", "2"), "run.passed_count"},
      {"created_on bool", with("created_on", true), "run.created_on"},
      {"is_completed string", with("is_completed", "yes"), "run.is_completed"},
  };
  for (const auto& c : cases) {
    auto obs = observation_from_api_run(c.run, 1, Source::kPoll);
    ASSERT_FALSE(obs.is_ok()) << c.name;
    EXPECT_NE(obs.message().find(c.message_part), std::string::npos)
        << c.name << ": " << obs.message();
  }
}

TEST(ObservationFromApiRun, UsesTheGivenSource) {
  auto obs = observation_from_api_run(example_run(), 7, Source::kApi);
  ASSERT_TRUE(obs.is_ok());
  EXPECT_EQ(obs->source, Source::kApi);
}

TEST(ParseRunsPage, PaginatedObject) {
  const std::string body = R"({"offset":0,"limit":2,"size":2,
      "_links":{"next":"/api/v2/get_runs/1&limit=2&offset=2","prev":null},
      "runs":[{"id":1},{"id":2}]})";
  auto page = parse_runs_page(body);
  ASSERT_TRUE(page.is_ok()) << page.message();
  ASSERT_EQ(page->runs.size(), 2u);
  EXPECT_EQ(page->runs[1]["id"], 2);
  ASSERT_TRUE(page->next.has_value());
  EXPECT_EQ(*page->next, "/api/v2/get_runs/1&limit=2&offset=2");
}

TEST(ParseRunsPage, LastPageHasNoNext) {
  auto page = parse_runs_page(
      R"({"offset":2,"limit":2,"size":1,"_links":{"next":null,"prev":"x"},"runs":[{"id":3}]})");
  ASSERT_TRUE(page.is_ok()) << page.message();
  EXPECT_EQ(page->runs.size(), 1u);
  EXPECT_FALSE(page->next.has_value());
}

TEST(ParseRunsPage, BareArrayOfOlderServers) {
  auto page = parse_runs_page(R"([{"id":1},{"id":2},{"id":3}])");
  ASSERT_TRUE(page.is_ok()) << page.message();
  EXPECT_EQ(page->runs.size(), 3u);
  EXPECT_FALSE(page->next.has_value());

  auto empty = parse_runs_page("[]");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->runs.empty());
}

TEST(ParseRunsPage, StripsLegacyPrefix) {
  auto bare = parse_runs_page("USER AUTHENTICATION SUCCESSFUL!\n[{\"id\":4}]");
  ASSERT_TRUE(bare.is_ok()) << bare.message();
  EXPECT_EQ(bare->runs.at(0)["id"], 4);
  auto paged = parse_runs_page(
      "USER AUTHENTICATION SUCCESSFUL!\n{\"runs\":[{\"id\":5}],\"_links\":{\"next\":null}}");
  ASSERT_TRUE(paged.is_ok()) << paged.message();
  EXPECT_EQ(paged->runs.at(0)["id"], 5);
}

TEST(ParseRunsPage, Errors) {
  struct Case {
    const char* body;
    const char* message_part;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"not json", "JSON"},
      {"42", "array or an object"},
      {R"({"plans":[]})", "runs"},
      {R"({"runs":{}})", "array"},
      {R"({"runs":[1]})", "runs[0]"},
      {R"([{"id":1}, "x"])", "runs[1]"},
      {R"({"runs":[],"_links":{"next":5}})", "_links.next"},
      {R"({"error":"Field :project_id is not a valid or accessible project."})",
       "not a valid or accessible project"},
  };
  for (const auto& c : cases) {
    auto page = parse_runs_page(c.body);
    ASSERT_FALSE(page.is_ok()) << c.body;
    EXPECT_NE(page.message().find(c.message_part), std::string::npos)
        << c.body << " → " << page.message();
  }
}

TEST(ParsePlansPage, BothShapes) {
  auto paged = parse_plans_page(
      R"({"offset":0,"limit":1,"size":1,"_links":{"next":"/api/v2/get_plans/1&limit=1&offset=1"},
          "plans":[{"id":9,"name":"Release","is_completed":false}]})");
  ASSERT_TRUE(paged.is_ok()) << paged.message();
  ASSERT_EQ(paged->plans.size(), 1u);
  EXPECT_EQ(paged->plans[0]["id"], 9);
  EXPECT_EQ(paged->next, "/api/v2/get_plans/1&limit=1&offset=1");

  auto bare = parse_plans_page(R"([{"id":9},{"id":10}])");
  ASSERT_TRUE(bare.is_ok());
  EXPECT_EQ(bare->plans.size(), 2u);
  EXPECT_FALSE(bare->next.has_value());

  EXPECT_FALSE(parse_plans_page(R"({"runs":[]})").is_ok());
}

const char* kPlan = R"({
  "id": 80, "name": "System test", "is_completed": false, "project_id": 1,
  "entries": [
    {"id": "3933d74b-4282-4c1f-be62-a641ab427063", "suite_id": 4, "name": "Browsers",
     "runs": [
       {"id": 81, "plan_id": 80, "entry_id": "3933d74b", "entry_index": 1,
        "config": "Firefox", "config_ids": [2], "is_completed": false, "passed_count": 1},
       {"id": 82, "plan_id": 80, "entry_id": "3933d74b", "entry_index": 2,
        "config": "Chrome", "config_ids": [3], "is_completed": false}
     ]},
    {"id": "e2", "suite_id": 5, "name": "Empty entry", "runs": []},
    {"id": "e3", "suite_id": 6, "name": "Null runs", "runs": null},
    {"id": "e4", "suite_id": 7, "name": "API",
     "runs": [{"id": 90, "plan_id": 80, "is_completed": true, "completed_on": 5}]}
  ]
})";

TEST(ParsePlan, FlattensEntries) {
  auto plan = parse_plan(kPlan);
  ASSERT_TRUE(plan.is_ok()) << plan.message();
  EXPECT_EQ(plan->plan_id, 80);
  EXPECT_EQ(plan->plan_name, "System test");
  EXPECT_FALSE(plan->is_completed);
  ASSERT_EQ(plan->runs.size(), 3u);
  EXPECT_EQ(plan->runs[0]["id"], 81);
  EXPECT_EQ(plan->runs[1]["id"], 82);
  EXPECT_EQ(plan->runs[2]["id"], 90);
  EXPECT_EQ(plan->runs[1]["config"], "Chrome");
}

TEST(ParsePlan, WithoutEntriesAndWithPrefix) {
  auto plan = parse_plan(
      "USER AUTHENTICATION SUCCESSFUL!\n{\"id\":3,\"name\":\"P\",\"is_completed\":true}");
  ASSERT_TRUE(plan.is_ok()) << plan.message();
  EXPECT_EQ(plan->plan_id, 3);
  EXPECT_TRUE(plan->is_completed);
  EXPECT_TRUE(plan->runs.empty());
}

TEST(ParsePlan, Errors) {
  const std::vector<const char*> bodies = {
      "[]",
      R"({"name":"no id"})",
      R"({"id":"1"})",
      R"({"id":1,"name":5})",
      R"({"id":1,"is_completed":"no"})",
      R"({"id":1,"entries":{}})",
      R"({"id":1,"entries":[5]})",
      R"({"id":1,"entries":[{"runs":{}}]})",
      R"({"id":1,"entries":[{"runs":[7]}]})",
      R"({"error":"Field :plan_id is not a valid test plan."})",
  };
  for (const char* body : bodies) EXPECT_FALSE(parse_plan(body).is_ok()) << body;
}

TEST(ObservationFromPlanRun, CarriesPlanIdAndName) {
  auto plan = parse_plan(kPlan);
  ASSERT_TRUE(plan.is_ok());
  auto obs = observation_from_plan_run(plan->runs[2], *plan, 50, Source::kPoll);
  ASSERT_TRUE(obs.is_ok()) << obs.message();
  EXPECT_EQ(obs->run_id, 90);
  EXPECT_EQ(*obs->get(Field::kPlanId), Value{std::int64_t{80}});
  EXPECT_EQ(*obs->get(Field::kPlanName), Value{std::string("System test")});
  EXPECT_EQ(obs->state, StateClaim::kEnded);

  // The plan's word wins even when the run object says otherwise.
  json odd = plan->runs[0];
  odd["plan_id"] = nullptr;
  auto obs2 = observation_from_plan_run(odd, *plan, 50, Source::kPoll);
  ASSERT_TRUE(obs2.is_ok());
  EXPECT_EQ(*obs2->get(Field::kPlanId), Value{std::int64_t{80}});
  EXPECT_EQ(*obs2->get(Field::kPlanName), Value{std::string("System test")});
}

TEST(ApiErrorMessage, ExtractsOrTrims) {
  EXPECT_EQ(api_error_message(R"({"error": "Field :run_id is not a valid test run."})"),
            "Field :run_id is not a valid test run.");
  EXPECT_EQ(api_error_message("USER AUTHENTICATION SUCCESSFUL!\n{\"error\":\"x\"}"), "x");
  EXPECT_EQ(api_error_message("  <html>Bad gateway</html>\n"), "<html>Bad gateway</html>");
  EXPECT_EQ(api_error_message(""), "empty body");
  EXPECT_EQ(api_error_message(" \n "), "empty body");
  EXPECT_EQ(api_error_message(R"({"error": 5})"), R"({"error": 5})");
  EXPECT_EQ(api_error_message(std::string(1000, 'x')).size(), 200u);
}

TEST(NextLinkToUri, Table) {
  struct Case {
    const char* next;
    const char* want;
  };
  const std::vector<Case> cases = {
      {"/api/v2/get_runs/1&limit=250&offset=250",
       "index.php?/api/v2/get_runs/1&limit=250&offset=250"},
      {"/api/v2/get_runs/1&is_completed=0&limit=250&offset=500",
       "index.php?/api/v2/get_runs/1&is_completed=0&limit=250&offset=500"},
      {"/api/v2/get_runs/1&limit=0&offset=250",
       "index.php?/api/v2/get_runs/1&limit=250&offset=250"},
      {"/api/v2/get_plans/3&offset=250&limit=0",
       "index.php?/api/v2/get_plans/3&offset=250&limit=250"},
      // Only the limit parameter, only when exactly 0.
      {"/api/v2/get_runs/1&limit=01&offset=250&xlimit=0",
       "index.php?/api/v2/get_runs/1&limit=01&offset=250&xlimit=0"},
      {"api/v2/get_runs/2&limit=10&offset=10", "index.php?/api/v2/get_runs/2&limit=10&offset=10"},
      {"https://x.testrail.io/index.php?/api/v2/get_runs/1&offset=5",
       "index.php?/api/v2/get_runs/1&offset=5"},
      {"get_runs/1&limit=0", "index.php?/api/v2/get_runs/1&limit=250"},
  };
  for (const auto& c : cases) EXPECT_EQ(next_link_to_uri(c.next), c.want) << c.next;
}

TEST(ApiPath, AcceptsEveryForm) {
  EXPECT_EQ(api_path("get_run/5"), "get_run/5");
  EXPECT_EQ(api_path("/api/v2/get_run/5"), "get_run/5");
  EXPECT_EQ(api_path("index.php?/api/v2/get_runs/1&limit=2"), "get_runs/1&limit=2");
  EXPECT_EQ(api_path("http://h/index.php?/api/v2/get_plan/3"), "get_plan/3");
}

// --- observe_runs_page: a get_runs page straight to observations. ----------

std::string nested(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

constexpr std::int64_t kProject = 7;  // the project whose get_runs the pages answer

std::vector<std::int64_t> ids_of(const ObservedRunsPage& page) {
  std::vector<std::int64_t> ids;
  for (const auto& o : page.observations) ids.push_back(o.run_id);
  return ids;
}

TEST(ObserveRunsPage, WellFormedPagesOfEitherShape) {
  json other = example_run();
  other["id"] = 82;
  other["plan_id"] = 12;
  other["is_completed"] = 1;
  other["name"] = "caf\u00e9 \"quoted\" \\ \n tab\t \u2603";
  other["refs"] = nullptr;
  other["passed_count"] = 0;
  other["created_on"] = 9223372036854775807LL;
  json sparse = {{"id", 3}, {"is_completed", nullptr}};
  json zero = {{"id", 4}, {"is_completed", 0}, {"milestone_id", nullptr}};
  const json runs = json::array({example_run(), other, sparse, zero});
  const std::vector<std::int64_t> all = {81, 82, 3, 4};
  struct Case {
    std::string body;
    std::vector<std::int64_t> ids;
    std::optional<std::string> next;
    bool bare;
  };
  const std::vector<Case> cases = {
      {json{{"offset", 0},
            {"limit", 250},
            {"size", 4},
            {"runs", runs},
            {"_links", {{"next", "/api/v2/get_runs/1&limit=250&offset=250"}, {"prev", nullptr}}}}
           .dump(),
       all, "/api/v2/get_runs/1&limit=250&offset=250", false},
      {json{{"runs", runs}, {"_links", {{"next", nullptr}}}}.dump(2), all, std::nullopt, false},
      {json{{"runs", runs}, {"_links", nullptr}}.dump(), all, std::nullopt, false},
      {json{{"runs", runs}}.dump(), all, std::nullopt, false},
      {runs.dump(), all, std::nullopt, true},
      {"[]", {}, std::nullopt, true},
      {R"({"runs":[]})", {}, std::nullopt, false},
      {std::string(kLegacyAuthPrefix) + runs.dump(), all, std::nullopt, true},
      {std::string(kLegacyAuthPrefix) + R"({"runs":[{"id":5}],"_links":{"next":null}})", {5},
       std::nullopt, false},
      // The last of duplicate keys wins.
      {R"({"runs":[{"id":7}],"runs":[{"id":8}],"_links":{"next":"a","next":"b"}})", {8}, "b",
       false},
      {R"([{"id":"x","id":5,"name":1,"name":"ok"}])", {5}, std::nullopt, true},
      // Unknown keys of any type and depth are skipped.
      {R"([{"id":9,"x":{"y":[1,2.5,-0,1e300,"s",true,null,{"z":{}}]},"config_ids":[2,6]}])", {9},
       std::nullopt, true},
      {R"([{"id":10,"big_unknown":18446744073709551615}])", {10}, std::nullopt, true},
      {R"({"runs":[{"id":11}],"error":"ignored when runs are there"})", {11}, std::nullopt, false},
      // As deep as kMaxJsonDepth allows.
      {R"([{"id":12,"x":)" + nested(30) + "}]", {12}, std::nullopt, true},
      {"\xEF\xBB\xBF[{\"id\":1}]", {1}, std::nullopt, true},  // a byte order mark is skipped
  };
  for (const auto& c : cases) {
    auto page = observe_runs_page(c.body, kProject, 77, Source::kPoll);
    ASSERT_TRUE(page.is_ok()) << c.body << ": " << page.message();
    EXPECT_EQ(ids_of(*page), c.ids) << c.body;
    EXPECT_EQ(page->next, c.next) << c.body;
    EXPECT_EQ(page->bare, c.bare) << c.body;
    EXPECT_FALSE(page->run_error.has_value()) << c.body;
    for (const auto& o : page->observations) {
      EXPECT_EQ(o.observed_at, 77);
      EXPECT_EQ(o.source, Source::kPoll);
    }
  }

  // Each run is what observation_from_api_run makes of it.
  auto page = observe_runs_page(runs.dump(), kProject, 77, Source::kApi);
  ASSERT_TRUE(page.is_ok()) << page.message();
  ASSERT_EQ(page->observations.size(), 4u);
  const Observation& o = page->observations[1];
  EXPECT_EQ(o.source, Source::kApi);
  EXPECT_EQ(o.state, StateClaim::kEnded);
  EXPECT_EQ(o.get(Field::kName), Value{std::string("caf\u00e9 \"quoted\" \\ \n tab\t \u2603")});
  EXPECT_EQ(o.get(Field::kRefs), Value{});
  EXPECT_EQ(o.get(Field::kPlanId), Value{std::int64_t{12}});
  EXPECT_FALSE(o.get(Field::kPlanName).has_value());
  EXPECT_EQ(o.get(Field::kCreatedOn), Value{std::int64_t{9223372036854775807LL}});
  EXPECT_EQ(page->observations[2].state, StateClaim::kNone);
  EXPECT_EQ(page->observations[3].state, StateClaim::kActive);
  EXPECT_EQ(page->observations[3].get(Field::kMilestoneId), Value{});
  auto dup =
      observe_runs_page(R"([{"id":"x","id":5,"name":1,"name":"ok"}])", kProject, 1, Source::kPoll);
  ASSERT_TRUE(dup.is_ok());
  EXPECT_EQ(dup->observations[0].get(Field::kName), Value{std::string("ok")});
}

TEST(ObserveRunsPage, PageErrorsNameTheProblem) {
  struct Case {
    std::string body;
    std::string error;
  };
  const std::string not_json = "body is not valid JSON";
  const std::string deep = "body nests deeper than 32 levels";
  const std::vector<Case> cases = {
      {"", "empty body"},
      {"   \n", "empty body"},
      {std::string(kLegacyAuthPrefix), "empty body"},
      {"not json", not_json},
      {"42", "body must be a JSON array or an object with `runs`"},
      {R"("runs")", "body must be a JSON array or an object with `runs`"},
      {R"({"plans":[]})", "page has no `runs` array"},
      {R"({"runs":{}})", "`runs` must be an array"},
      {R"({"runs":[1]})", "runs[0] must be an object"},
      {R"([{"id":1}, "x"])", "runs[1] must be an object"},
      {"[" + nested(30) + "]", "runs[0] must be an object"},
      {R"({"runs":[],"_links":{"next":5}})", "`_links.next` must be a string or null"},
      {R"({"runs":[],"_links":[]})", "`_links` must be an object"},
      {R"({"error":"Field :project_id is not a valid or accessible project."})",
       "API error: Field :project_id is not a valid or accessible project."},
      {R"([{"id":1}] trailing)", not_json},
      {R"([{"id":1},])", not_json},
      {"[\"\\ud800\"]", not_json},
      {"[\"\xff\"]", not_json},
      {R"([{"id":12,"x":)" + nested(31) + "}]", deep},
      {nested(40), deep},
  };
  for (const auto& c : cases) {
    auto page = observe_runs_page(c.body, kProject, 1, Source::kPoll);
    ASSERT_FALSE(page.is_ok()) << c.body;
    EXPECT_EQ(page.message(), c.error) << c.body;
  }
}

TEST(ObserveRunsPage, RunErrorsKeepTheRunsBeforeThem) {
  struct Case {
    std::string body;
    std::string error;
  };
  const std::string bad_id = "run.id must be a positive integer";
  const std::vector<Case> cases = {
      {R"([{"name":"no id"}])", "run.id is missing"},
      {R"([{"id":"81"}])", bad_id},
      {R"([{"id":0}])", bad_id},
      {R"([{"id":-3}])", bad_id},
      {R"([{"id":1.5}])", bad_id},
      {R"([{"id":9223372036854775808}])", bad_id},
      {R"([{"id":1,"name":3}])", "run.name must be a string or null"},
      {R"([{"id":1,"passed_count":"2"}])", "run.passed_count must be an integer or null"},
      {R"([{"id":1,"passed_count":2.0}])", "run.passed_count must be an integer or null"},
      {R"([{"id":1,"passed_count":18446744073709551615}])",
       "run.passed_count must be an integer within 64 bits"},
      {R"([{"id":1,"passed_count":-1}])", "run.passed_count must be an integer >= 0 or null"},
      {R"([{"id":1,"custom_status7_count":-9}])",
       "run.custom_status7_count must be an integer >= 0 or null"},
      {R"([{"id":1,"created_on":true}])", "run.created_on must be an integer or null"},
      {R"([{"id":1,"is_completed":"yes"}])", "run.is_completed must be a boolean or null"},
      {R"([{"id":1,"is_completed":2}])", "run.is_completed must be a boolean or null"},
  };
  for (const auto& c : cases) {
    auto page = observe_runs_page(c.body, kProject, 1, Source::kPoll);
    ASSERT_TRUE(page.is_ok()) << c.body << ": " << page.message();
    EXPECT_EQ(page->run_error, c.error) << c.body;
    EXPECT_TRUE(page->observations.empty()) << c.body;
  }

  auto page = observe_runs_page(R"({"runs":[{"id":1},{"id":2,"url":5},{"id":3}]})", kProject, 1,
                                Source::kPoll);
  ASSERT_TRUE(page.is_ok()) << page.message();
  EXPECT_EQ(page->run_error, "run.url must be a string or null");
  EXPECT_EQ(ids_of(*page), std::vector<std::int64_t>{1});
}

TEST(ObserveRunsPage, PagesOfAnySize) {
  for (int n : {1, 300, 2, 1000, 0}) {
    json runs = json::array();
    std::vector<std::int64_t> want;
    for (int i = 0; i < n; ++i) {
      json r = example_run();
      r["id"] = i + 1;
      r["description"] = std::string(static_cast<std::size_t>(i % 200), 'd');
      runs.push_back(std::move(r));
      want.push_back(i + 1);
    }
    auto page = observe_runs_page(json{{"runs", runs}, {"_links", {{"next", nullptr}}}}.dump(),
                                  kProject, 1, Source::kPoll);
    ASSERT_TRUE(page.is_ok()) << page.message();
    EXPECT_EQ(ids_of(*page), want);
  }
  json huge = example_run();
  huge["description"] = std::string(9u << 20, 'h');
  auto page = observe_runs_page(json::array({huge}).dump(), kProject, 1, Source::kPoll);
  ASSERT_TRUE(page.is_ok()) << page.message();
  EXPECT_EQ(page->observations[0].get(Field::kDescription), Value{std::string(9u << 20, 'h')});
}

// A run the listing of project P holds belongs to P, whatever the run object
// says of its project: an absent or null project_id is observed as P; a run's
// own project_id is kept.
TEST(ObserveRunsPage, ARunWithoutProjectIdBelongsToTheListingsProject) {
  struct Case {
    std::string run;
    std::int64_t project;
  };
  const std::vector<Case> cases = {
      {R"({"id":1,"name":"no project_id"})", kProject},
      {R"({"id":2,"project_id":null})", kProject},
      {R"({"id":3,"project_id":9})", 9},
      {R"({"id":4,"project_id":7})", kProject},
  };
  for (const auto& c : cases) {
    for (const std::string& body : {"[" + c.run + "]", R"({"runs":[)" + c.run + "]}"}) {
      auto page = observe_runs_page(body, kProject, 1, Source::kPoll);
      ASSERT_TRUE(page.is_ok()) << body << ": " << page.message();
      ASSERT_EQ(page->observations.size(), 1u) << body;
      EXPECT_EQ(page->observations[0].get(Field::kProjectId), Value{c.project}) << body;
    }
  }
}

}  // namespace
// SPEC §6 rule 4: the one test of "TestRail says this run or plan does not exist".
TEST(AnswerSaysMissing, OnlyA400SayingTheIdIsNotValid) {
  struct Case {
    int status;
    const char* message;
    bool missing;
  };
  const Case cases[] = {
      {400, "Field :run_id is not a valid test run.", true},
      {400, "Field :plan_id is not a valid test plan.", true},
      {400, "FIELD :RUN_ID IS NOT A VALID TEST RUN.", true},
      {400, "Field :name is a required field.", false},
      {403, "Field :run_id is not a valid test run.", false},
      {404, "Not found", false},
      {500, "is not a valid", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(answer_says_missing(c.status, c.message), c.missing) << c.status << " " << c.message;
  }
}

}  // namespace runsync
