#include "daemon/metrics.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace runsync
