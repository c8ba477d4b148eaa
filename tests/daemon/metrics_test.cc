#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace runsync {
namespace {

TEST(Metrics, RendersCountersGaugesAndHistograms) {
  Metrics m;
  m.counter("runsync_x_total", "X things", {{"result", "ok"}}).inc(3);
  m.counter("runsync_x_total", "X things", {{"result", "bad \"one\""}}).inc();
  m.gauge("runsync_depth", "Depth").set(2.5);
  m.gauge_callback("runsync_read", "Read", {}, [] { return 7.0; });
  Histogram& h = m.histogram("runsync_t_seconds", "T", {}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const std::string text = m.render();
  EXPECT_NE(text.find("# TYPE runsync_x_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_x_total{result=\"ok\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_x_total{result=\"bad \\\"one\\\"\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_depth 2.5\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_read 7\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_t_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_t_seconds_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_t_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_t_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("runsync_t_seconds_sum 5.55\n"), std::string::npos);
}

TEST(Metrics, CounterSumMatchesLabels) {
  Metrics m;
  m.counter("runsync_e_total", "E", {{"event", "a"}, {"result", "ok"}}).inc(2);
  m.counter("runsync_e_total", "E", {{"event", "b"}, {"result", "ok"}}).inc(3);
  m.counter("runsync_e_total", "E", {{"event", "b"}, {"result", "bad"}}).inc(5);
  EXPECT_EQ(m.counter_sum("runsync_e_total"), 10u);
  EXPECT_EQ(m.counter_sum("runsync_e_total", {{"result", "ok"}}), 5u);
  EXPECT_EQ(m.counter_sum("runsync_e_total", {{"event", "b"}, {"result", "bad"}}), 5u);
  EXPECT_EQ(m.counter_sum("runsync_missing_total"), 0u);
}

TEST(Metrics, OneNameOneType) {
  Metrics m;
  m.counter("runsync_y_total", "Y");
  EXPECT_THROW(m.gauge("runsync_y_total", "Y"), std::logic_error);
}

TEST(Metrics, ProcessMetricsComeFromProc) {
  Metrics m;
  register_process_metrics(m);
  const std::string text = m.render();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    const std::string line_start = std::string("\n") + name + " ";
    const auto at = text.find(line_start);
    ASSERT_NE(at, std::string::npos) << name << "\n" << text;
    const double value = std::strtod(text.c_str() + at + line_start.size(), nullptr);
    // A process this young may not have used one clock tick of CPU yet.
    if (std::string(name) == "process_cpu_seconds_total") {
      EXPECT_GE(value, 0) << name;
    } else {
      EXPECT_GT(value, 0) << name;
    }
  }
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE process_open_fds gauge\n"), std::string::npos);
}

TEST(Metrics, CollectorsRunBeforeEveryRender) {
  Metrics m;
  Gauge& g = m.gauge("runsync_g", "G");
  int runs = 0;
  m.add_collector([&] { g.set(++runs); });
  EXPECT_NE(m.render().find("runsync_g 1\n"), std::string::npos);
  EXPECT_NE(m.render().find("runsync_g 2\n"), std::string::npos);
}

TEST(Metrics, PollDurationBucketsReachBeyondAFullSync) {
  const auto bounds = poll_duration_buckets();
  ASSERT_FALSE(bounds.empty());
  EXPECT_GE(bounds.back(), 600);
  EXPECT_TRUE(std::is_sorted(bounds.begin(), bounds.end()));
}

}  // namespace
}  // namespace runsync
