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

TEST(WebhookEvent, TheLastOfDuplicateKeysWins) {
  auto ev = parse_webhook_event(
      R"({"event_name":"case.created","event_name":"run.started","timestamp":1,"payload":{"id":1,)"
      R"("title":"first","id":7,"title":"last"},"project_code":"ID"})");
  const Observation& o = ok_obs(ev);
  EXPECT_EQ(ev->run_id, 7);
  EXPECT_EQ(o.get(Field::kName), Value{std::string("last")});
}

TEST(WebhookEvent, EscapedKeysAreTheirText) {
  auto ev = parse_webhook_event(envelope("run.started", R"({"i\u0064":3,"titl\u0065":"x\u00e9"})"));
  const Observation& o = ok_obs(ev);
  EXPECT_EQ(ev->run_id, 3);
  EXPECT_EQ(o.get(Field::kName), Value{std::string("x\xC3\xA9")});
}

TEST(WebhookEvent, IntegersBeyond64BitsAreRefused) {
  // Beyond 64 bits a number is refused wherever it is (RFC 8259 §6 lets a
  // parser limit the range), known field or not.
  const std::string refused = "body is not valid JSON: a number is malformed or beyond 64 bits";
  for (const char* payload : {R"({"id":2,"shiny":123456789012345678901234567890})",
                              R"({"id":2,"dull":-9223372036854775809})",
                              R"({"id":2,"passed":123456789012345678901234567890})"}) {
    auto beyond = parse_webhook_event(envelope("run.completed", payload));
    ASSERT_FALSE(beyond.is_ok()) << payload;
    EXPECT_EQ(beyond.message(), refused) << payload;
  }
  auto unsigned_only =
      parse_webhook_event(envelope("run.completed", R"({"id":2,"failed":9223372036854775808})"));
  ASSERT_FALSE(unsigned_only.is_ok());
  EXPECT_EQ(unsigned_only.message(), "payload.failed must be an integer within 64 bits");
  auto ts = parse_webhook_event(
      R"({"event_name":"run.deleted","timestamp":9223372036854775808,"payload":{"id":1},"project_code":"ID"})");
  ASSERT_FALSE(ts.is_ok());
  EXPECT_EQ(ts.message(), "timestamp must be a non-negative integer (unix seconds)");
  auto negative_zero = parse_webhook_event(envelope("run.completed", R"({"id":2,"passed":-0})"));
  EXPECT_EQ(ok_obs(negative_zero).get(Field::kPassedCount), Value{std::int64_t{0}});
  auto real = parse_webhook_event(envelope("run.completed", R"({"id":2,"passed":1.0})"));
  ASSERT_FALSE(real.is_ok());
  EXPECT_EQ(real.message(), "payload.passed must be an integer or null");
}

// Counts are integers >= 0 (SPEC §4): anything else is an error naming
// the field, whichever event carries it, with or without a byte order mark.
TEST(WebhookEvent, CountsAreNonNegativeIntegers) {
  struct Case {
    const char* event;
    const char* payload;
    const char* error;  // nullptr: accepted
  };
  const Case cases[] = {
      {"run.started", R"({"id":1,"cases_count":-1})", "payload.cases_count must be an integer >= 0 or null"},
      {"run.started", R"({"id":1,"cases_count":0})", nullptr},
      {"run.started", R"({"id":1,"cases_count":null})", nullptr},
      {"run.updated", R"({"id":1,"cases_count":-5})", "payload.cases_count must be an integer >= 0 or null"},
      {"run.updated", R"({"id":1,"cases_added":-3})", "payload.cases_added must be an integer >= 0 or null"},
      {"run.updated", R"({"id":1,"cases_added":1.5})", "payload.cases_added must be an integer or null"},
      {"run.updated", R"({"id":1,"cases_added":9223372036854775807})", nullptr},
      {"run.updated", R"({"id":1,"cases_added":18446744073709551616})", "body is not valid JSON: a number is malformed or beyond 64 bits"},
      {"run.completed", R"({"id":1,"passed":-1})", "payload.passed must be an integer >= 0 or null"},
      {"run.completed", R"({"id":1,"failed":-9223372036854775808})", "payload.failed must be an integer >= 0 or null"},
      {"run.completed", R"({"id":1,"blocked":"2"})", "payload.blocked must be an integer or null"},
      {"run.aborted", R"({"id":1,"untested":-2})", "payload.untested must be an integer >= 0 or null"},
      {"run.aborted", R"({"id":1,"retest":-2})", "payload.retest must be an integer >= 0 or null"},
      {"run.aborted", R"({"id":1,"skiped":-2})", "payload.skiped must be an integer >= 0 or null"},
      {"run.aborted", R"({"id":1,"skipped":-2})", "payload.skipped must be an integer >= 0 or null"},
      {"run.aborted", R"({"id":1,"cases":-2})", "payload.cases must be an integer >= 0 or null"},
      {"run.aborted", R"({"id":1,"duration":-2})", "payload.duration must be an integer >= 0 or null"},
      {"run.completed", R"({"id":1,"passed":0,"failed":3})", nullptr},
  };
  for (const Case& c : cases) {
    for (const std::string prefix : {"", "\xEF\xBB\xBF"}) {  // a byte order mark
      const std::string body = prefix + envelope(c.event, c.payload);
      auto ev = parse_webhook_event(body);
      if (c.error == nullptr) {
        EXPECT_TRUE(ev.is_ok()) << c.event << " " << c.payload << ": " << ev.message();
      } else {
        ASSERT_FALSE(ev.is_ok()) << c.event << " " << c.payload;
        EXPECT_EQ(ev.message(), c.error) << c.event << " " << c.payload;
      }
    }
  }
}

TEST(WebhookEvent, ByteOrderMarkIsSkippedAndNulIsInvalid) {
  const std::string body = envelope("run.deleted", R"({"id":4})");
  auto bom = parse_webhook_event("\xEF\xBB\xBF" + body);
  EXPECT_EQ(ok_obs(bom).state, StateClaim::kDeleted);
  // A NUL byte is not JSON anywhere; the whole body counts for the depth limit.
  auto nul = parse_webhook_event(body + std::string(1, '\0') + "trailing garbage");
  ASSERT_FALSE(nul.is_ok());
  EXPECT_EQ(nul.message(),
            "body is not valid JSON: it holds a NUL byte at offset " + std::to_string(body.size()));
  auto nul_deep = parse_webhook_event(body + std::string(1, '\0') + std::string(40, '['));
  ASSERT_FALSE(nul_deep.is_ok());
  EXPECT_NE(nul_deep.message().find("nests deeper"), std::string::npos);
  auto cut = parse_webhook_event(body.substr(0, 20) + std::string(1, '\0') + body.substr(20));
  ASSERT_FALSE(cut.is_ok());
  EXPECT_EQ(cut.message(), "body is not valid JSON: it holds a NUL byte at offset 20");
}

TEST(WebhookEvent, NestingUpToTheLimitIsAccepted) {
  // The envelope and payload are two levels; the rest in an unknown field.
  auto nested = [](int levels, const char* innermost) {
    std::string s;
    for (int i = 0; i < levels; ++i) s += i % 2 ? R"({"k":)" : "[";
    s += innermost;
    for (int i = levels - 1; i >= 0; --i) s += i % 2 ? "}" : "]";
    return s;
  };
  for (const char* innermost : {"1", "[]", "{}"}) {
    const int inner = kMaxJsonDepth - 2 - (std::string(innermost) == "1" ? 0 : 1);
    auto at_limit = parse_webhook_event(
        envelope("run.deleted", R"({"id":1,"x":)" + nested(inner, innermost) + "}"));
    EXPECT_TRUE(at_limit.is_ok()) << innermost << ": " << at_limit.message();
    auto beyond = parse_webhook_event(
        envelope("run.deleted", R"({"id":1,"x":)" + nested(inner + 1, innermost) + "}"));
    ASSERT_FALSE(beyond.is_ok()) << innermost;
    EXPECT_EQ(beyond.message(), "body nests deeper than 32 levels");
  }
}

TEST(WebhookEvent, CasesCountWinsOverCasesAdded) {
  auto both =
      parse_webhook_event(envelope("run.updated", R"({"id":1,"cases_added":3,"cases_count":20})"));
  EXPECT_EQ(ok_obs(both).get(Field::kCasesCount), Value{std::int64_t{20}});
  EXPECT_FALSE(ok_obs(both).cases_added.has_value());
  auto null_count = parse_webhook_event(
      envelope("run.updated", R"({"id":1,"cases_count":null,"cases_added":3})"));
  EXPECT_EQ(ok_obs(null_count).get(Field::kCasesCount), Value{});
  EXPECT_FALSE(ok_obs(null_count).cases_added.has_value());
  auto null_added = parse_webhook_event(envelope("run.updated", R"({"id":1,"cases_added":null})"));
  EXPECT_FALSE(ok_obs(null_added).cases_added.has_value());
  auto bad_added = parse_webhook_event(envelope("run.updated", R"({"id":1,"cases_added":"3"})"));
  ASSERT_FALSE(bad_added.is_ok());
  EXPECT_EQ(bad_added.message(), "payload.cases_added must be an integer or null");
}

TEST(WebhookEvent, EnvelopeDetails) {
  auto no_member = parse_webhook_event(
      R"({"event_name":"run.deleted","timestamp":0,"payload":{"id":1},"project_code":"","team_member_id":null})");
  ASSERT_TRUE(no_member.is_ok()) << no_member.message();
  EXPECT_FALSE(no_member->team_member_id.has_value());
  EXPECT_EQ(no_member->project_code, "");
  auto bad_member = parse_webhook_event(
      R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":1},"project_code":"ID","team_member_id":"40"})");
  ASSERT_FALSE(bad_member.is_ok());
  EXPECT_EQ(bad_member.message(), "team_member_id must be an integer or null");
  auto huge_member = parse_webhook_event(
      R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":1},"project_code":"ID","team_member_id":18446744073709551615})");
  ASSERT_FALSE(huge_member.is_ok());
  EXPECT_EQ(huge_member.message(), "team_member_id must be an integer within 64 bits or null");
  auto empty_name = parse_webhook_event(envelope("", R"({"id":1})"));
  ASSERT_FALSE(empty_name.is_ok());
  EXPECT_EQ(empty_name.message(), "event_name must be a non-empty string");
  // An unknown event still needs an object payload; a good id is kept.
  auto unknown = parse_webhook_event(envelope("case.created", R"({"id":5,"title":7})"));
  ASSERT_TRUE(unknown.is_ok());
  EXPECT_EQ(unknown->run_id, 5);
  auto unknown_array = parse_webhook_event(envelope("case.created", "[]"));
  ASSERT_FALSE(unknown_array.is_ok());
  EXPECT_EQ(unknown_array.message(), "payload must be an object");
}

TEST(WebhookEvent, PlanAndVisibleDetails) {
  auto plan_id =
      parse_webhook_event(envelope("run.started", R"({"id":1,"plan":{"id":"3","title":"d"}})"));
  ASSERT_FALSE(plan_id.is_ok());
  EXPECT_EQ(plan_id.message(), "payload.plan.id must be an integer or null");
  auto plan_title =
      parse_webhook_event(envelope("run.started", R"({"id":1,"plan":{"id":3,"title":false}})"));
  ASSERT_FALSE(plan_title.is_ok());
  EXPECT_EQ(plan_title.message(), "payload.plan.title must be a string or null");
  auto plan_empty = parse_webhook_event(envelope("run.started", R"({"id":1,"plan":{}})"));
  EXPECT_FALSE(ok_obs(plan_empty).get(Field::kPlanId).has_value());
  // The first bad field in reading order is the one reported.
  auto two_bad =
      parse_webhook_event(envelope("run.completed", R"({"id":1,"failed":"x","passed":"y"})"));
  ASSERT_FALSE(two_bad.is_ok());
  EXPECT_EQ(two_bad.message(), "payload.passed must be an integer or null");
  for (const char* v : {"0", "1"}) {
    auto ev = parse_webhook_event(
        envelope("run.report_changed", std::string(R"({"id":1,"visible":)") + v + "}"));
    EXPECT_EQ(ok_obs(ev).get(Field::kReportVisible), Value{std::int64_t{v[0] == '1'}});
  }
  for (const char* v : {"2", "null", "1.0"}) {
    auto ev = parse_webhook_event(
        envelope("run.report_changed", std::string(R"({"id":1,"visible":)") + v + "}"));
    ASSERT_FALSE(ev.is_ok()) << v;
    EXPECT_EQ(ev.message(), "payload.visible must be a boolean");
  }
}

TEST(WebhookEvent, ALargeBodyThenASmallOne) {
  const std::string title(200000, 'x');
  auto large =
      parse_webhook_event(envelope("run.started", R"({"id":1,"title":")" + title + R"("})"));
  EXPECT_EQ(ok_obs(large).get(Field::kName), Value{title});
  auto small = parse_webhook_event(envelope("run.deleted", R"({"id":2})"));
  EXPECT_EQ(ok_obs(small).run_id, 2);
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
        Bad{"two_byte_order_marks", "\xEF\xBB\xBF\xEF\xBB\xBF{\"event_name\":\"run.deleted\",\"timestamp\":1,\"payload\":{\"id\":1},\"project_code\":\"ID\"}", "not valid JSON"},
        Bad{"trailing_garbage", R"({"event_name":"run.deleted","timestamp":1,"payload":{"id":1},"project_code":"ID"} x)", "not valid JSON"}),
    [](const ::testing::TestParamInfo<Bad>& p) { return std::string(p.param.name); });

// A number that is not one, or runs into a letter, is named as such where a
// value belongs; elsewhere the body is only not valid JSON.
TEST(WebhookEvent, MalformedNumbersAreNamedWhereAValueBelongs) {
  const std::string number = "body is not valid JSON: a number is malformed or beyond 64 bits";
  const std::string other = "body is not valid JSON";
  const std::pair<const char*, std::string> cases[] = {
      {R"({"id":1,"passed":01})", number}, {R"({"id":1,"passed":1.})", number},
      {R"({"id":1,"passed":-})", number},  {R"({"id":1,"passed":1x})", number},
      {R"({"id":1,"x":[1e400]})", number}, {R"({"id":1,"x":[2,-1e999]})", number},
      {R"({"id":1,"passed":+1})", other},  {R"({"id":1,"passed":.5})", other},
      {R"({"id"-:1})", other},             {R"({"id":1,7:1})", other},
      {R"({"id":1,"x":1e-400})", ""},      {R"({"id":1,"x":-0.0e+0})", ""},
  };
  for (const auto& [payload, error] : cases) {
    auto ev = parse_webhook_event(envelope("run.completed", payload));
    if (error.empty()) {
      EXPECT_TRUE(ev.is_ok()) << payload << ": " << ev.message();
    } else {
      ASSERT_FALSE(ev.is_ok()) << payload;
      EXPECT_EQ(ev.message(), error) << payload;
    }
  }
}

TEST(JsonDepth, CountsOnlyStructureOutsideStrings) {
  EXPECT_TRUE(json_depth_within(R"({"a":"[[[[[[[[[[["})", 2));
  EXPECT_TRUE(json_depth_within(R"({"a":"\"[[[["})", 1));
  EXPECT_FALSE(json_depth_within("[[[", 2));
}

}  // namespace
}  // namespace runsync
