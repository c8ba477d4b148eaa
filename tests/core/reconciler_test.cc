// Table-driven tests of the reconciliation rules (SPEC §6).
#include "core/reconciler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace runsync {
namespace {

using Fields = std::map<Field, Value>;

RunRecord stored(std::int64_t run_id, RunState state, Fields fields,
                 std::array<std::int64_t, kGroupCount> at) {
  RunRecord r;
  r.run_id = run_id;
  r.at(Field::kState) = std::string(state_name(state));
  r.at(Field::kIsCompleted) = std::int64_t{state_rank(state) >= 1 ? 1 : 0};
  for (auto& [f, v] : fields) r.at(f) = v;
  r.group_at = at;
  r.change_seq = 7;
  return r;
}

Observation obs(Source source, std::int64_t at, StateClaim claim, Fields fields,
                std::optional<std::int64_t> cases_added = std::nullopt) {
  Observation o;
  o.run_id = 1;
  o.source = source;
  o.observed_at = at;
  o.state = claim;
  for (auto& [f, v] : fields) o.set(f, v);
  o.cases_added = cases_added;
  return o;
}

constexpr auto W = Source::kWebhook;
constexpr auto P = Source::kPoll;
const Value kNull{};
Value I(std::int64_t v) { return Value{v}; }
Value S(const char* v) { return Value{std::string(v)}; }

struct Case {
  std::string name;
  std::optional<RunRecord> current;
  Observation observation;
  Decision::Outcome outcome;
  bool write;
  Fields expect;                      // fields of the next row to check
  std::vector<std::string> changed;   // columns in the change log, in field order
};

std::vector<Case> cases() {
  using O = Decision::Outcome;
  const auto active = stored(1, RunState::kActive, {{Field::kName, S("Nightly")}, {Field::kPassedCount, I(3)}, {Field::kCasesCount, I(10)}},
                             {100, 100, 100, 0});
  const auto completed = stored(1, RunState::kCompleted, {{Field::kCompletedOn, I(500)}, {Field::kPassedCount, I(9)}},
                                {0, 500, 500, 0});
  const auto aborted = stored(1, RunState::kAborted, {{Field::kPassedCount, I(2)}, {Field::kEnvironment, S("staging")}},
                              {0, 500, 500, 0});
  const auto deleted = stored(1, RunState::kDeleted, {{Field::kName, S("gone")}}, {100, 100, 600, 0});
  return {
      {"webhook creates an unknown run", std::nullopt,
       obs(W, 100, StateClaim::kActive, {{Field::kName, S("Nightly")}, {Field::kCasesCount, I(14)}}),
       O::kApplied, true, {{Field::kName, S("Nightly")}, {Field::kState, S("active")}, {Field::kIsCompleted, I(0)}},
       {"name", "state", "is_completed", "cases_count"}},
      {"report_changed for an unknown run creates it active", std::nullopt,
       obs(W, 100, StateClaim::kNone, {{Field::kReportVisible, I(1)}}), O::kApplied, true,
       {{Field::kState, S("active")}, {Field::kReportVisible, I(1)}}, {"state", "is_completed", "report_visible"}},
      {"deleted event for an unknown run leaves a tombstone", std::nullopt,
       obs(W, 100, StateClaim::kDeleted, {}), O::kApplied, true,
       {{Field::kState, S("deleted")}, {Field::kIsCompleted, I(0)}}, {"state", "is_completed"}},
      {"same webhook again changes no field", active,
       obs(W, 100, StateClaim::kNone, {{Field::kPassedCount, I(3)}}), O::kApplied, true,
       {{Field::kPassedCount, I(3)}}, {}},
      {"newer counts win", active, obs(W, 150, StateClaim::kNone, {{Field::kPassedCount, I(5)}}),
       O::kApplied, true, {{Field::kPassedCount, I(5)}}, {"passed_count"}},
      {"older counts are stale", active, obs(W, 99, StateClaim::kNone, {{Field::kPassedCount, I(1)}}),
       O::kStale, false, {{Field::kPassedCount, I(3)}}, {}},
      {"same-second tie: the later arrival wins", active,
       obs(W, 100, StateClaim::kNone, {{Field::kPassedCount, I(4)}}), O::kApplied, true,
       {{Field::kPassedCount, I(4)}}, {"passed_count"}},
      {"groups are judged apart: stale counts, fresh report", active,
       obs(W, 99, StateClaim::kNone, {{Field::kPassedCount, I(1)}, {Field::kReportVisible, I(1)}}),
       O::kApplied, true, {{Field::kPassedCount, I(3)}, {Field::kReportVisible, I(1)}}, {"report_visible"}},
      {"completed moves an active run forward", active,
       obs(W, 150, StateClaim::kCompleted, {{Field::kCompletedOn, I(150)}, {Field::kPassedCount, I(10)}}),
       O::kApplied, true,
       {{Field::kState, S("completed")}, {Field::kIsCompleted, I(1)}, {Field::kCompletedOn, I(150)}},
       {"completed_on", "state", "is_completed", "passed_count"}},
      {"a late completed still ends the run (state only moves forward)", active,
       obs(W, 50, StateClaim::kCompleted, {{Field::kCompletedOn, I(50)}, {Field::kPassedCount, I(1)}}),
       O::kApplied, true,
       {{Field::kState, S("completed")}, {Field::kCompletedOn, I(50)}, {Field::kPassedCount, I(3)}},
       {"completed_on", "state", "is_completed"}},
      {"a late run.started never reopens a completed run", completed,
       obs(W, 600, StateClaim::kActive, {{Field::kName, S("Nightly")}}), O::kApplied, true,
       {{Field::kState, S("completed")}, {Field::kIsCompleted, I(1)}, {Field::kName, S("Nightly")}}, {"name"}},
      {"poll is_completed=0 never reopens, nor clears completed_on", completed,
       obs(P, 900, StateClaim::kActive, {{Field::kCompletedOn, kNull}, {Field::kPassedCount, I(9)}}),
       O::kApplied, false, {{Field::kState, S("completed")}, {Field::kCompletedOn, I(500)}}, {}},
      {"newer aborted replaces completed", completed,
       obs(W, 600, StateClaim::kAborted, {{Field::kCompletedOn, I(600)}}), O::kApplied, true,
       {{Field::kState, S("aborted")}, {Field::kCompletedOn, I(600)}}, {"completed_on", "state"}},
      {"older aborted does not replace completed", completed,
       obs(W, 400, StateClaim::kAborted, {{Field::kCompletedOn, I(400)}}), O::kStale, false,
       {{Field::kState, S("completed")}, {Field::kCompletedOn, I(500)}}, {}},
      {"poll is_completed=1 never turns aborted into completed", aborted,
       obs(P, 900, StateClaim::kEnded, {{Field::kCompletedOn, I(510)}}), O::kApplied, true,
       {{Field::kState, S("aborted")}, {Field::kCompletedOn, I(510)}}, {"completed_on"}},
      {"poll is_completed=1 completes an active run", active,
       obs(P, 900, StateClaim::kEnded, {{Field::kCompletedOn, I(890)}}), O::kApplied, true,
       {{Field::kState, S("completed")}, {Field::kIsCompleted, I(1)}}, {"completed_on", "state", "is_completed"}},
      {"a poll never clears webhook-only fields", aborted,
       obs(P, 900, StateClaim::kNone, {{Field::kEnvironment, kNull}}), O::kApplied, false,
       {{Field::kEnvironment, S("staging")}}, {}},
      {"nothing changes a deleted run", deleted,
       obs(W, 900, StateClaim::kCompleted, {{Field::kName, S("back")}, {Field::kPassedCount, I(1)}}),
       O::kStale, false, {{Field::kState, S("deleted")}, {Field::kName, S("gone")}}, {}},
      {"a poll listing a deleted run does not resurrect it", deleted,
       obs(P, 900, StateClaim::kActive, {{Field::kName, S("gone")}}), O::kStale, false,
       {{Field::kState, S("deleted")}}, {}},
      {"deleted ends any state, whatever its time", completed, obs(W, 1, StateClaim::kDeleted, {}),
       O::kApplied, true, {{Field::kState, S("deleted")}, {Field::kIsCompleted, I(1)}}, {"state"}},
      {"cases_added adds to a known count", active, obs(W, 150, StateClaim::kNone, {}, 14), O::kApplied,
       true, {{Field::kCasesCount, I(24)}}, {"cases_count"}},
      {"cases_added saturates instead of overflowing", active,
       obs(W, 150, StateClaim::kNone, {}, INT64_MAX), O::kApplied, true,
       {{Field::kCasesCount, I(INT64_MAX)}}, {"cases_count"}},
      {"cases_added in the same second as the counts adds nothing", active,
       obs(W, 100, StateClaim::kNone, {}, 14), O::kApplied, true, {{Field::kCasesCount, I(10)}}, {}},
      {"cases_added on a stale group adds nothing", active, obs(W, 50, StateClaim::kNone, {}, 14),
       O::kStale, false, {{Field::kCasesCount, I(10)}}, {}},
      {"cases_added without a known count invents nothing", std::nullopt,
       obs(W, 150, StateClaim::kNone, {}, 14), O::kApplied, true, {{Field::kCasesCount, kNull}},
       {"state", "is_completed"}},
      {"a re-poll that finds nothing new writes nothing", active,
       obs(P, 900, StateClaim::kActive, {{Field::kName, S("Nightly")}, {Field::kPassedCount, I(3)}}),
       O::kApplied, false, {{Field::kPassedCount, I(3)}}, {}},
      {"a poll that finds a change writes it", active,
       obs(P, 900, StateClaim::kActive, {{Field::kName, S("Nightly 2")}}), O::kApplied, true,
       {{Field::kName, S("Nightly 2")}}, {"name"}},
      {"identity is filled in once and never rewritten", active,
       obs(W, 150, StateClaim::kNone, {{Field::kProjectCode, S("ID")}, {Field::kPassedCount, I(3)}}),
       O::kApplied, true, {{Field::kProjectCode, S("ID")}}, {"project_code"}},
  };
}

class ReconcilerTest : public ::testing::TestWithParam<Case> {};

TEST_P(ReconcilerTest, Applies) {
  const Case& c = GetParam();
  const Decision d = Reconciler::apply(c.current, c.observation, 1000);
  EXPECT_EQ(d.outcome, c.outcome);
  EXPECT_EQ(d.write, c.write);
  EXPECT_EQ(d.created, !c.current.has_value());
  for (const auto& [f, v] : c.expect) {
    EXPECT_EQ(d.next.get(f), v) << "field " << field_info(f).column;
  }
  std::vector<std::string> changed;
  for (const auto& info : all_fields()) {
    if (!d.changes.contains(info.field)) continue;
    changed.push_back(info.column);
    const Value before = c.current ? c.current->get(info.field) : Value{};
    EXPECT_EQ(d.changes.old_value(info.field), before) << info.column;
    EXPECT_NE(d.changes.old_value(info.field), d.next.get(info.field)) << info.column;
  }
  std::sort(changed.begin(), changed.end());
  std::vector<std::string> want = c.changed;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(changed, want);
  EXPECT_EQ(d.changes.size(), changed.size());
  if (d.write) {
    EXPECT_EQ(d.next.updated_at, 1000);
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, ReconcilerTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           std::string n;
                           for (char ch : p.param.name) n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

TEST(Reconciler, ApplyingTwiceIsIdempotent) {
  for (const Case& c : cases()) {
    const Decision first = Reconciler::apply(c.current, c.observation, 1000);
    const std::optional<RunRecord> after = first.write ? first.next : c.current;
    const Decision second = Reconciler::apply(after, c.observation, 2000);
    EXPECT_TRUE(second.changes.empty()) << c.name;
  }
}

TEST(Reconciler, OrderOfTwoObservationsDoesNotMatterForTheResult) {
  // Webhook and poll disagree; whichever arrives first, the newer one wins.
  const auto older = obs(W, 100, StateClaim::kNone, {{Field::kPassedCount, I(1)}, {Field::kName, S("a")}});
  const auto newer = obs(P, 200, StateClaim::kActive, {{Field::kPassedCount, I(2)}, {Field::kName, S("b")}});
  auto run = [](const Observation& x, const Observation& y) {
    Decision a = Reconciler::apply(std::nullopt, x, 1);
    Decision b = Reconciler::apply(a.next, y, 2);
    return b.write ? b.next : a.next;
  };
  const RunRecord ab = run(older, newer);
  const RunRecord ba = run(newer, older);
  EXPECT_EQ(ab.get(Field::kPassedCount), I(2));
  EXPECT_EQ(ba.get(Field::kPassedCount), I(2));
  EXPECT_EQ(ab.get(Field::kName), S("b"));
  EXPECT_EQ(ba.get(Field::kName), S("b"));
}

// Changes and the row they lead to, for the change log's JSON.
struct Changed {
  FieldChanges changes;
  RunRecord next;
  Changed& set(Field f, Value before, Value after) {
    changes.record(f, std::move(before), after);
    next.at(f) = std::move(after);
    return *this;
  }
};

TEST(Reconciler, ChangesJsonListsOldAndNew) {
  Changed c;
  c.set(Field::kPassedCount, I(1), I(2)).set(Field::kName, kNull, S("x"));
  EXPECT_EQ(changes_to_json(c.changes, c.next), R"({"name":[null,"x"],"passed_count":[1,2]})");
}

// A field set twice in one decision logs the value it had before the first
// and the last; one set back to where it started is no change.
TEST(Reconciler, AFieldSetTwiceLogsItsFirstOldAndLastNewValue) {
  RunRecord current;
  current.run_id = 1;
  current.at(Field::kCasesCount) = I(5);
  current.at(Field::kState) = S("active");
  Observation o = obs(W, 100, StateClaim::kNone, {{Field::kCasesCount, I(10)}});
  o.cases_added = 2;  // cases_count 5 -> 10 -> 12
  Decision d = Reconciler::apply(current, o, 1000);
  ASSERT_TRUE(d.changes.contains(Field::kCasesCount));
  EXPECT_EQ(d.changes.old_value(Field::kCasesCount), I(5));
  EXPECT_EQ(d.next.get(Field::kCasesCount), I(12));
  EXPECT_EQ(changes_to_json(d.changes, d.next), R"({"cases_count":[5,12]})");

  o = obs(W, 100, StateClaim::kNone, {{Field::kCasesCount, I(3)}});
  o.cases_added = 2;  // 5 -> 3 -> 5
  d = Reconciler::apply(current, o, 1000);
  EXPECT_TRUE(d.changes.empty());
  EXPECT_EQ(d.next.get(Field::kCasesCount), I(5));
  EXPECT_EQ(changes_to_json(d.changes, d.next), "{}");
}

TEST(Reconciler, ChangesJsonEscapesLikeAJsonLibrary) {
  const std::string tricky = "quote \" backslash \\ newline \n tab \t bell \x07 caf\xc3\xa9";
  Changed c;
  c.set(Field::kRefs, I(-3), S("x")).set(Field::kName, kNull, Value{tricky});
  const std::string text = changes_to_json(c.changes, c.next);
  const auto parsed = nlohmann::json::parse(text);
  EXPECT_EQ(parsed["name"][1].get<std::string>(), tricky);
  EXPECT_EQ(parsed["refs"][0].get<std::int64_t>(), -3);
  EXPECT_EQ(text, parsed.dump());  // sorted keys, no white space
}

TEST(Reconciler, ChangesJsonIsWhatAJsonLibraryDumps) {
  std::string every_byte;
  for (int c = 1; c < 0x80; ++c) every_byte.push_back(static_cast<char>(c));
  Changed c;
  for (const auto& info : all_fields()) {  // every key, in enum order (not sorted)
    if (info.field == Field::kName) {
      c.set(info.field, S("caf\xc3\xa9 \xe2\x98\x83"), S(""));
    } else if (info.field == Field::kPassedCount) {
      c.set(info.field, I(INT64_MIN), I(INT64_MAX));
    } else {
      c.set(info.field, kNull, info.kind == ValueKind::kText ? Value{every_byte} : I(-7));
    }
  }
  nlohmann::json want = nlohmann::json::object();
  auto to_json = [](const Value& v) -> nlohmann::json {
    if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
    if (const auto* t = std::get_if<std::string>(&v)) return *t;
    return nullptr;
  };
  for (const auto& info : all_fields()) {
    want[info.column] = {to_json(c.changes.old_value(info.field)), to_json(c.next.get(info.field))};
  }
  EXPECT_EQ(changes_to_json(c.changes, c.next), want.dump());
  EXPECT_EQ(changes_to_json(FieldChanges{}, RunRecord{}), "{}");
}

// Text from the database need not be UTF-8 (SQL may write anything): the
// log still gets valid JSON, each invalid byte written as U+FFFD.
TEST(Reconciler, ChangesJsonOfTextThatIsNotUtf8IsValidJson) {
  Changed c;
  c.set(Field::kName, S("caf\xe9"), S("ok"));
  const std::string text = changes_to_json(c.changes, c.next);
  EXPECT_EQ(text, "{\"name\":[\"caf\xef\xbf\xbd\",\"ok\"]}");
  EXPECT_TRUE(nlohmann::json::accept(text));
}

// A poll that saw the run end cannot tell how (rule 8): a run.aborted that
// happened before that poll but arrives after it still says aborted.
TEST(Reconciler, APollThatSawTheRunEndDoesNotHideHowItEnded) {
  const RunRecord active = stored(1, RunState::kActive, {}, {100, 100, 100, 0});
  const Decision polled = Reconciler::apply(active, obs(P, 900, StateClaim::kEnded, {}), 900);
  ASSERT_EQ(polled.next.get(Field::kState), S("completed"));
  const Decision aborted = Reconciler::apply(
      polled.next, obs(W, 700, StateClaim::kAborted, {{Field::kCompletedOn, I(700)}}), 950);
  EXPECT_EQ(aborted.outcome, Decision::Outcome::kApplied);
  EXPECT_EQ(aborted.next.get(Field::kState), S("aborted"));
  // Nor does a run.started that arrived late, after the run had ended.
  const Decision started = Reconciler::apply(polled.next, obs(W, 800, StateClaim::kActive, {}), 960);
  const Decision aborted_after_start = Reconciler::apply(
      started.next, obs(W, 700, StateClaim::kAborted, {}), 970);
  EXPECT_EQ(aborted_after_start.next.get(Field::kState), S("aborted"));
  // And a later poll still does not turn it back.
  const Decision again = Reconciler::apply(aborted.next, obs(P, 1000, StateClaim::kEnded, {}), 1000);
  EXPECT_EQ(again.next.get(Field::kState), S("aborted"));
}

TEST(Reconciler, LastEventAndPollTimesTrackSources) {
  Decision a = Reconciler::apply(std::nullopt, obs(W, 100, StateClaim::kActive, {}), 5);
  EXPECT_EQ(a.next.last_event_at, 100);
  EXPECT_EQ(a.next.last_polled_at, 0);
  Decision b = Reconciler::apply(a.next, obs(P, 300, StateClaim::kActive, {{Field::kName, S("n")}}), 6);
  EXPECT_EQ(b.next.last_event_at, 100);
  EXPECT_EQ(b.next.last_polled_at, 300);
}

// SPEC §6 rule 2, the one function every channel stamps observations with.
TEST(ObservationTime, TheClaimedTimeButNeverLaterThanTheArrival) {
  struct Row {
    std::optional<std::int64_t> claimed;
    std::int64_t arrived_at;
    std::int64_t expected;
  };
  const Row cases[] = {
      {100, 200, 100},           // a Date or timestamp in the past
      {200, 200, 200},           // the same second
      {300, 200, 200},           // a clock running ahead gains nothing
      {std::nullopt, 200, 200},  // no Date header: the arrival
  };
  for (const Row& c : cases) {
    EXPECT_EQ(observation_time(c.claimed, c.arrived_at), c.expected)
        << c.claimed.value_or(-1) << " arrived " << c.arrived_at;
  }
}

}  // namespace
}  // namespace runsync
