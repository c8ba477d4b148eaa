// Reading the ids out of TestRail webhook deliveries (SPEC §4a).
#include "core/testrail_hint.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace runsync {
namespace {

struct FormatCase {
  std::string content_type;
  std::optional<HintFormat> format;  // nullopt: refused
};

TEST(HintFormat, ByContentType) {
  const FormatCase cases[] = {
      {"application/json", HintFormat::kJson},
      {"Application/JSON; charset=utf-8", HintFormat::kJson},
      {"text/plain", HintFormat::kJson},
      {"text/plain; charset=UTF-8", HintFormat::kJson},
      {"application/vnd.testrail+json", HintFormat::kJson},
      {"", HintFormat::kJson},
      {"application/x-www-form-urlencoded", HintFormat::kForm},
      {"application/x-www-form-urlencoded; charset=utf-8", HintFormat::kForm},
      {"multipart/form-data; boundary=x", std::nullopt},
      {"application/xml", std::nullopt},
      {"text/xml", std::nullopt},
  };
  for (const auto& c : cases) {
    auto format = hint_format(c.content_type);
    if (c.format) {
      ASSERT_TRUE(format.is_ok()) << c.content_type << ": " << format.message();
      EXPECT_EQ(*format, *c.format) << c.content_type;
    } else {
      ASSERT_FALSE(format.is_ok()) << c.content_type;
      EXPECT_NE(format.message().find("application/x-www-form-urlencoded"), std::string::npos);
    }
  }
}

struct HintCase {
  const char* name;
  HintFormat format;
  std::string body;
  std::optional<std::int64_t> run, plan, project;
  std::string error = {};  // non-empty: expected part of the error
};

TEST(ParseHint, ReadsTheIdsWithTheDefaultPointers) {
  const HintCase cases[] = {
      {"json all three", HintFormat::kJson, R"({"run_id":7,"plan_id":3,"project_id":1})", 7, 3, 1},
      {"json strings", HintFormat::kJson, R"({"run_id":"7","project_id":"1"})", 7, {}, 1},
      {"json null and empty are not given", HintFormat::kJson,
       R"({"run_id":null,"plan_id":"","project_id":2})", {}, {}, 2},
      {"json extra keys are ignored", HintFormat::kJson,
       R"({"event":"run_updated","user":{"id":5},"plan_id":9})", {}, 9, {}},
      {"json largest id", HintFormat::kJson, R"({"run_id":9223372036854775807})",
       9223372036854775807, {}, {}},
      {"json zero", HintFormat::kJson, R"({"run_id":0})", {}, {}, {}, "run_id (at /run_id)"},
      {"json negative", HintFormat::kJson, R"({"run_id":-3})", {}, {}, {}, "got -3"},
      {"json beyond 64 bits", HintFormat::kJson, R"({"run_id":9223372036854775808})", {}, {}, {},
       "positive integer"},
      {"json float", HintFormat::kJson, R"({"run_id":1.5})", {}, {}, {}, "got 1.5"},
      {"json object", HintFormat::kJson, R"({"run_id":{"id":1}})", {}, {}, {}, "run_id"},
      {"json string not digits", HintFormat::kJson, R"({"plan_id":"12a"})", {}, {}, {},
       "plan_id (at /plan_id) must be a positive integer or a string of decimal digits, got \"12a\""},
      {"json unrendered template", HintFormat::kJson, R"({"run_id":"{{run.id}}"})", {}, {}, {},
       "got \"{{run.id}}\""},
      {"json no ids", HintFormat::kJson, R"({"event":"x"})", {}, {}, {},
       "the hint names no run, plan or project: expected ids at /run_id, /plan_id, /project_id"},
      {"json empty object", HintFormat::kJson, "{}", {}, {}, {}, "names no run"},
      {"json array", HintFormat::kJson, "[1]", {}, {}, {}, "body must be a JSON object"},
      {"json broken", HintFormat::kJson, R"({"run_id":)", {}, {}, {}, "body is not valid JSON"},
      {"json empty body", HintFormat::kJson, "", {}, {}, {}, "body is not valid JSON"},
      {"form all three", HintFormat::kForm, "run_id=7&plan_id=3&project_id=1", 7, 3, 1},
      {"form run only", HintFormat::kForm, "event=result_added&run_id=42", 42, {}, {}},
      {"form empty value is not given", HintFormat::kForm, "run_id=&project_id=4", {}, {}, 4},
      {"form encoded name and spaces", HintFormat::kForm, "plan%5Fid=+5+&x=a%20b", {}, 5, {}},
      {"form first field wins", HintFormat::kForm, "run_id=1&run_id=2", 1, {}, {}},
      {"form bad value", HintFormat::kForm, "run_id=abc", {}, {}, {},
       "run_id (form field 'run_id') must be"},
      {"form bad escape", HintFormat::kForm, "run_id=%4", {}, {}, {}, "bad percent escape"},
      {"form no ids", HintFormat::kForm, "event=x", {}, {}, {},
       "expected form fields run_id, plan_id, project_id"},
      {"form empty body", HintFormat::kForm, "", {}, {}, {}, "names no run"},
      // A NUL byte is never part of a hint, even where no id is read.
      {"json NUL then garbage", HintFormat::kJson, std::string("{\"run_id\":7}\0garbage", 20),
       {}, {}, {}, "body is not valid JSON: it holds a NUL byte at offset 12"},
      {"form NUL in another field", HintFormat::kForm, std::string("run_id=7&x=\0", 12), {}, {},
       {}, "body is not a valid form: it holds a NUL byte at offset 11"},
  };
  for (const auto& c : cases) {
    auto hint = parse_hint(c.body, c.format, HintPointers{});
    if (!c.error.empty()) {
      ASSERT_FALSE(hint.is_ok()) << c.name;
      EXPECT_NE(hint.message().find(c.error), std::string::npos) << c.name << ": " << hint.message();
      continue;
    }
    ASSERT_TRUE(hint.is_ok()) << c.name << ": " << hint.message();
    EXPECT_EQ(hint->run_id, c.run) << c.name;
    EXPECT_EQ(hint->plan_id, c.plan) << c.name;
    EXPECT_EQ(hint->project_id, c.project) << c.name;
  }
}

TEST(ParseHint, ReadsConfiguredPointersAndTheirLastSegmentInForms) {
  HintPointers pointers;
  pointers.run_id = "/data/run/id";
  pointers.plan_id = "";  // read nothing
  pointers.project_id = "/data/a~1b";
  auto json = parse_hint(R"({"data":{"run":{"id":11},"a/b":2},"plan_id":5})", HintFormat::kJson,
                         pointers);
  ASSERT_TRUE(json.is_ok()) << json.message();
  EXPECT_EQ(json->run_id, 11);
  EXPECT_EQ(json->plan_id, std::nullopt);
  EXPECT_EQ(json->project_id, 2);

  auto form = parse_hint("id=12&a%2Fb=3&plan_id=5", HintFormat::kForm, pointers);
  ASSERT_TRUE(form.is_ok()) << form.message();
  EXPECT_EQ(form->run_id, 12);
  EXPECT_EQ(form->plan_id, std::nullopt);
  EXPECT_EQ(form->project_id, 3);

  auto none = parse_hint(R"({"plan_id":5})", HintFormat::kJson, pointers);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.message().find("expected ids at /data/run/id, /data/a~1b"), std::string::npos)
      << none.message();
}

TEST(Hint, RefreshesTheMostSpecificThingItNames) {
  EXPECT_EQ((Hint{7, 3, 1}.kind()), HintKind::kRun);
  EXPECT_EQ((Hint{7, 3, 1}.id()), 7);
  EXPECT_EQ((Hint{{}, 3, 1}.kind()), HintKind::kPlan);
  EXPECT_EQ((Hint{{}, 3, 1}.id()), 3);
  EXPECT_EQ((Hint{{}, {}, 1}.kind()), HintKind::kProject);
  EXPECT_EQ((Hint{{}, {}, 1}.id()), 1);
  for (HintKind kind : {HintKind::kRun, HintKind::kPlan, HintKind::kProject}) {
    EXPECT_EQ(hint_kind_from_name(hint_kind_name(kind)), kind);
  }
  EXPECT_EQ(hint_kind_from_name("suite"), std::nullopt);
}

TEST(CheckHintPointer, AcceptsPointersThatNameAField) {
  for (const char* ok : {"", "/run_id", "/data/run/id", "/a~0b", "/a~1b", "/0"}) {
    EXPECT_TRUE(check_hint_pointer(ok).is_ok()) << ok;
  }
  for (const char* bad : {"run_id", "/a~2", "/", "/a/"}) {
    EXPECT_FALSE(check_hint_pointer(bad).is_ok()) << bad;
  }
}

}  // namespace
}  // namespace runsync
