#include "core/webhook_event.h"

#include <gtest/gtest.h>

#include <string>

namespace runsync {
namespace {

std::string envelope(const std::string& name, const std::string& payload, long ts = 1650540069) {
  return R"({"event_name":")" + name + R"(","timestamp":)" + std::to_string(ts) +
         R"(,"payload":)" + payload + R"(,"team_member_id":40,"project_code":"ID"})";
}

const Observation& ok_obs(const StatusOr<WebhookEvent>& ev) {
  EXPECT_TRUE(ev.is_ok()) << (ev.is_ok() ? "" : ev.message());
  return ev->observation;
}

TEST(WebhookEvent, RunStartedFromTheReferenceExample) {
  auto ev = parse_webhook_event(R"({
    "event_name": "run.started", "timestamp": 1650540069,
    "payload": {"id": 1, "title": "Test run 2022/04/21", "description": null,
                "plan": {"id": 3, "title": "d"}, "cases_count": 14, "environment": null},
    "team_member_id": 40, "project_code": "ID"})");
  const Observation& o = ok_obs(ev);
  EXPECT_TRUE(ev->known);
  EXPECT_EQ(ev->run_id, 1);
  EXPECT_EQ(o.observed_at, 1650540069);
  EXPECT_EQ(o.state, StateClaim::kActive);
  EXPECT_EQ(o.get(Field::kName), Value{std::string("Test run 2022/04/21")});
  EXPECT_EQ(o.get(Field::kDescription), Value{});
  EXPECT_EQ(o.get(Field::kPlanId), Value{std::int64_t{3}});
  EXPECT_EQ(o.get(Field::kPlanName), Value{std::string("d")});
  EXPECT_EQ(o.get(Field::kCasesCount), Value{std::int64_t{14}});
  EXPECT_EQ(o.get(Field::kProjectCode), Value{std::string("ID")});
  EXPECT_EQ(ev->team_member_id, 40);
}

TEST(WebhookEvent, PlanMayBeNull) {
  auto ev = parse_webhook_event(envelope("run.started", R"({"id":1,"title":"x","plan":null})"));
  const Observation& o = ok_obs(ev);
  EXPECT_EQ(o.get(Field::kPlanId), Value{});
  EXPECT_EQ(o.get(Field::kPlanName), Value{});
}

TEST(WebhookEvent, CompletedCarriesCountsAndEnds) {
  auto ev = parse_webhook_event(envelope(
      "run.completed", R"({"id":2,"cases":14,"passed":3,"failed":1,"blocked":2,"duration":1200})", 1650540194));
  const Observation& o = ok_obs(ev);
  EXPECT_EQ(o.state, StateClaim::kCompleted);
  EXPECT_EQ(o.get(Field::kCasesCount), Value{std::int64_t{14}});
  EXPECT_EQ(o.get(Field::kPassedCount), Value{std::int64_t{3}});
  EXPECT_EQ(o.get(Field::kFailedCount), Value{std::int64_t{1}});
  EXPECT_EQ(o.get(Field::kBlockedCount), Value{std::int64_t{2}});
  EXPECT_EQ(o.get(Field::kDurationMs), Value{std::int64_t{1200}});
  EXPECT_EQ(o.get(Field::kCompletedOn), Value{std::int64_t{1650540194}});
}

TEST(WebhookEvent, AbortedAcceptsBothSpellingsOfSkipped) {
  for (const char* key : {"skipped", "skiped"}) {
    auto ev = parse_webhook_event(envelope(
        "run.aborted", std::string(R"({"id":1,"cases":14,"untested":14,")") + key + R"(":5})"));
    const Observation& o = ok_obs(ev);
    EXPECT_EQ(o.state, StateClaim::kAborted);
    EXPECT_EQ(o.get(Field::kSkippedCount), Value{std::int64_t{5}}) << key;
    EXPECT_EQ(o.get(Field::kUntestedCount), Value{std::int64_t{14}});
  }
}

TEST(WebhookEvent, UpdatedAcceptsCasesCountOrCasesAdded) {
  auto a = parse_webhook_event(envelope("run.updated", R"({"id":1,"cases_added":14})"));
  EXPECT_EQ(ok_obs(a).cases_added, 14);
  EXPECT_FALSE(ok_obs(a).get(Field::kCasesCount).has_value());
  auto b = parse_webhook_event(envelope("run.updated", R"({"id":1,"cases_count":20})"));
  EXPECT_EQ(ok_obs(b).get(Field::kCasesCount), Value{std::int64_t{20}});
  EXPECT_FALSE(ok_obs(b).cases_added.has_value());
}

TEST(WebhookEvent, DeletedAndReportChanged) {
  auto d = parse_webhook_event(envelope("run.deleted", R"({"id":1})"));
  EXPECT_EQ(ok_obs(d).state, StateClaim::kDeleted);
  auto r = parse_webhook_event(envelope("run.report_changed", R"({"id":2,"visible":true})"));
  EXPECT_EQ(ok_obs(r).get(Field::kReportVisible), Value{std::int64_t{1}});
  auto f = parse_webhook_event(envelope("run.report_changed", R"({"id":2,"visible":false})"));
  EXPECT_EQ(ok_obs(f).get(Field::kReportVisible), Value{std::int64_t{0}});
}

TEST(WebhookEvent, UnknownFieldsAreIgnored) {
  auto ev = parse_webhook_event(envelope("run.completed", R"({"id":2,"passed":1,"shiny":{"a":[1]}})"));
  EXPECT_TRUE(ev.is_ok());
}

TEST(WebhookEvent, UnknownEventsParseButAreNotInterpreted) {
  auto ev = parse_webhook_event(envelope("case.created", R"({"id":"not-a-run"})"));
  ASSERT_TRUE(ev.is_ok());
  EXPECT_FALSE(ev->known);
  EXPECT_FALSE(ev->run_id.has_value());
}

struct Bad {
  const char* name;
  std::string body;
  const char* message_part;
};

class WebhookEventBad : public ::testing::TestWithParam<Bad> {};

TEST_P(WebhookEventBad, IsRefusedWithAClearMessage) {
  auto ev = parse_webhook_event(GetParam().body);
  ASSERT_FALSE(ev.is_ok());
  EXPECT_NE(ev.message().find(GetParam().message_part), std::string::npos) << ev.message();
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WebhookEventBad,
    ::testing::Values(
        Bad{"not_json", "not json", "not valid JSON"},
        Bad{"empty", "", "not valid JSON"},
        Bad{"array", "[1,2]", "JSON object"},
        Bad{"no_event_name", R"({"timestamp":1,"payload":{"id":1},"project_code":"ID"})", "event_name"},
        Bad{"event_name_number", R"({"event_name":5,"timestamp":1,"payload":{"id":1},"project_code":"ID"})", "event_name"},
        Bad{"no_timestamp", R"({"event_name":"run.deleted","payload":{"id":1},"project_code":"ID"})", "timestamp"},
        Bad{"timestamp_string", R"({"event_name":"run.deleted","timestamp":"1","payload":{"id":1},"project_code":"ID"})", "timestamp"},
        Bad{"timestamp_float", R"({"event_name":"run.deleted","timestamp":1.5,"payload":{"id":1},"project_code":"ID"})", "timestamp"},
        Bad{"timestamp_negative", R"({"event_name":"run.deleted","timestamp":-1,"payload":{"id":1},"project_code":"ID"})", "timestamp"},
        Bad{"no_payload", R"({"event_name":"run.deleted","timestamp":1,"project_code":"ID"})", "payload"},
        Bad{"payload_array", R"({"event_name":"run.deleted","timestamp":1,"payload":[],"project_code":"ID"})", "payload"},
        Bad{"no_project_code", R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":1}})", "project_code"},
        Bad{"no_id", R"({"event_name":"run.deleted","timestamp":1,"payload":{},"project_code":"ID"})", "payload.id"},
        Bad{"id_string", R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":"1"},"project_code":"ID"})", "payload.id"},
        Bad{"id_zero", R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":0},"project_code":"ID"})", "payload.id"},
        Bad{"id_huge", R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":18446744073709551615},"project_code":"ID"})", "payload.id"},
        Bad{"count_string", R"({"event_name":"run.completed","timestamp":1,"payload":{"id":1,"passed":"3"},"project_code":"ID"})", "payload.passed"},
        Bad{"title_number", R"({"event_name":"run.started","timestamp":1,"payload":{"id":1,"title":3},"project_code":"ID"})", "payload.title"},
        Bad{"plan_string", R"({"event_name":"run.started","timestamp":1,"payload":{"id":1,"plan":"x"},"project_code":"ID"})", "payload.plan"},
        Bad{"visible_string", R"({"event_name":"run.report_changed","timestamp":1,"payload":{"id":1,"visible":"yes"},"project_code":"ID"})", "payload.visible"},
        Bad{"visible_missing", R"({"event_name":"run.report_changed","timestamp":1,"payload":{"id":1},"project_code":"ID"})", "payload.visible"},
        Bad{"deep_nesting", std::string(100000, '[') + std::string(100000, ']'), "nests deeper"},
        Bad{"trailing_garbage", R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":1},"project_code":"ID"} x)", "not valid JSON"}),
    [](const ::testing::TestParamInfo<Bad>& info) { return std::string(info.param.name); });

TEST(JsonDepth, CountsOnlyStructureOutsideStrings) {
  EXPECT_TRUE(json_depth_within(R"({"a":"[[[[[[[[[[["})", 2));
  EXPECT_TRUE(json_depth_within(R"({"a":"\"[[[["})", 1));
  EXPECT_FALSE(json_depth_within("[[[", 2));
}

}  // namespace
}  // namespace runsync
