// Every JSON body runsync reads (webhook events, TestRail API answers,
// TestRail webhook hints) is refused when anything but white space follows
// its JSON value, a NUL byte included (nlohmann alone stops reading at a
// NUL).
#include "core/json_text.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/testrail_api.h"
#include "core/testrail_hint.h"
#include "core/webhook_event.h"

namespace runsync {
namespace {

using namespace std::string_literals;

// One parser and a body it accepts.
struct Parser {
  const char* name;
  std::string valid;
  std::function<Status(std::string_view)> parse;
};

const std::vector<Parser>& parsers() {
  static const std::vector<Parser> kParsers = {
      {"webhook event",
       R"({"event_name":"run.deleted","timestamp":1,"project_code":"P","payload":{"id":4}})",
       [](std::string_view b) { return parse_webhook_event(b).status(); }},
      {"API answer", R"({"id":4})", [](std::string_view b) { return parse_api_body(b).status(); }},
      {"get_runs page", R"({"runs":[{"id":4}],"_links":{"next":null}})",
       [](std::string_view b) { return parse_runs_page(b).status(); }},
      {"get_runs bare page", R"([{"id":4}])",
       [](std::string_view b) { return observe_runs_page(b, 1, 1, Source::kPoll).status(); }},
      {"get_plans page", R"({"plans":[{"id":2}]})",
       [](std::string_view b) { return parse_plans_page(b).status(); }},
      {"get_plan", R"({"id":2,"name":"P","entries":[{"runs":[{"id":4}]}]})",
       [](std::string_view b) { return parse_plan(b).status(); }},
      {"TestRail hint", R"({"run_id":4})",
       [](std::string_view b) {
         return parse_hint(b, HintFormat::kJson, HintPointers{}).status();
       }},
  };
  return kParsers;
}

std::string nul_at(std::size_t offset) {
  return "body is not valid JSON: it holds a NUL byte at offset " + std::to_string(offset);
}

TEST(JsonText, RefuseNulByteNamesTheFirstOne) {
  EXPECT_TRUE(refuse_nul_byte("").is_ok());
  EXPECT_TRUE(refuse_nul_byte(R"({"a":"\u0000"})").is_ok());  // an escaped NUL is JSON
  EXPECT_EQ(refuse_nul_byte("ab\0c\0"s).message(), nul_at(2));
  EXPECT_EQ(refuse_nul_byte("a=\0"s, "a valid form").message(),
            "body is not a valid form: it holds a NUL byte at offset 2");
}

TEST(JsonText, EveryParserRefusesWhatFollowsTheJsonValue) {
  struct Case {
    const char* name;
    std::function<std::string(const std::string&)> body;  // from a valid body
    std::function<std::string(const std::string&)> error;
  };
  const std::string not_json = "body is not valid JSON";
  const Case cases[] = {
      {"NUL then garbage", [](const std::string& v) { return v + "\0trailing garbage"s; },
       [](const std::string& v) { return nul_at(v.size()); }},
      {"NUL then a second document", [](const std::string& v) { return v + "\0"s + v; },
       [](const std::string& v) { return nul_at(v.size()); }},
      {"NUL last", [](const std::string& v) { return v + "\0"s; },
       [](const std::string& v) { return nul_at(v.size()); }},
      {"NUL after white space", [](const std::string& v) { return v + " \n\0x"s; },
       [](const std::string& v) { return nul_at(v.size() + 2); }},
      {"NUL first", [](const std::string& v) { return "\0"s + v; },
       [](const std::string&) { return nul_at(0); }},
      {"NUL before the last bracket",
       [](const std::string& v) { return v.substr(0, v.size() - 1) + "\0"s + v.back(); },
       [](const std::string& v) { return nul_at(v.size() - 1); }},
      {"garbage", [](const std::string& v) { return v + " trailing"; },
       [&](const std::string&) { return not_json; }},
      {"a second document", [](const std::string& v) { return v + v; },
       [&](const std::string&) { return not_json; }},
  };
  for (const Parser& p : parsers()) {
    ASSERT_TRUE(p.parse(p.valid).is_ok()) << p.name << ": " << p.parse(p.valid).message();
    ASSERT_TRUE(p.parse(p.valid + " \r\n\t").is_ok()) << p.name;
    for (const Case& c : cases) {
      const Status s = p.parse(c.body(p.valid));
      ASSERT_FALSE(s.is_ok()) << p.name << ", " << c.name;
      EXPECT_EQ(s.message(), c.error(p.valid)) << p.name << ", " << c.name;
    }
  }
}

}  // namespace
}  // namespace runsync
