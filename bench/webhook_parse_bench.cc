// Webhook parse benchmark: parse_webhook_event on a realistic delivery of
// each event kind (laid out as in reference/webhook-run-events.md), against
// the baseline of the former parser's minimum, nlohmann::json::parse of the
// same body (a DOM, before any field was read), in the same invocation.
//
// Usage: runsync_parse_bench [google benchmark flags], e.g.
//   build/bench/runsync_parse_bench --benchmark_filter=run.started
// Performance is reported, never asserted; the exit status is non-zero only
// when a body does not parse. Wall-clock figures are noisy on a busy
// machine: for stable numbers count instructions with
//   valgrind --tool=callgrind --toggle-collect='runsync::parse_webhook_event*'

#include <benchmark/benchmark.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/webhook_event.h"

namespace {

struct Body {
  std::string name;
  std::string json;
};

std::string envelope(const char* event, long timestamp, const std::string& payload) {
  return std::string("{\n  \"event_name\": \"") + event +
         "\",\n  \"timestamp\": " + std::to_string(timestamp) + ",\n  \"payload\": " + payload +
         ",\n  \"team_member_id\": 40,\n  \"project_code\": \"ID\"\n}";
}

std::vector<Body> bodies() {
  return {
      {"run.started/plan", envelope("run.started", 1650540069, R"json({
    "id": 1,
    "title": "Nightly regression 2022/04/21 (staging, build 4812)",
    "description": null,
    "plan": {
      "id": 3,
      "title": "Release 5.2"
    },
    "cases_count": 14,
    "environment": null
  })json")},
      {"run.started/no_plan", envelope("run.started", 1650540069, R"json({
    "id": 1,
    "title": "Smoke 2022/04/21",
    "description": "Checks after every deploy",
    "plan": null,
    "cases_count": 14,
    "environment": "staging"
  })json")},
      {"run.updated", envelope("run.updated", 1650540114, R"json({
    "id": 1,
    "cases_added": 14
  })json")},
      {"run.updated/cases_count", envelope("run.updated", 1650540114, R"json({
    "id": 1,
    "cases_count": 28
  })json")},
      {"run.completed", envelope("run.completed", 1650540194, R"json({
    "id": 2,
    "cases": 14,
    "passed": 11,
    "failed": 2,
    "blocked": 1,
    "duration": 125000
  })json")},
      {"run.aborted", envelope("run.aborted", 1650540148, R"json({
    "id": 1,
    "cases": 14,
    "passed": 3,
    "untested": 9,
    "failed": 1,
    "blocked": 0,
    "skiped": 1,
    "duration": 61000
  })json")},
      {"run.deleted", envelope("run.deleted", 1650540289, R"json({
    "id": 1
  })json")},
      {"run.report_changed", envelope("run.report_changed", 1650540222, R"json({
    "id": 2,
    "visible": true
  })json")},
  };
}

void BM_ParseWebhookEvent(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto ev = runsync::parse_webhook_event(body);
    benchmark::DoNotOptimize(ev);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
  state.SetItemsProcessed(state.iterations());
}

// The baseline: what the nlohmann-based parser did before reading a field.
void BM_NlohmannParse(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    benchmark::DoNotOptimize(doc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  static const std::vector<Body> kBodies = bodies();
  for (const Body& b : kBodies) {
    auto ev = runsync::parse_webhook_event(b.json);
    if (!ev.is_ok() || !ev->known) {
      std::fprintf(stderr, "runsync_parse_bench: %s does not parse: %s\n", b.name.c_str(),
                   ev.is_ok() ? "not a known event" : ev.message().c_str());
      return 1;
    }
  }
  for (const Body& b : kBodies) {
    benchmark::RegisterBenchmark(("parse_webhook_event/" + b.name).c_str(), BM_ParseWebhookEvent,
                                 b.json);
    benchmark::RegisterBenchmark(("nlohmann_parse/" + b.name).c_str(), BM_NlohmannParse, b.json);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
