// Prometheus metrics (text exposition format 0.0.4). Counters, gauges and
// histograms, each family named with the runsync_ prefix by the caller.
//
// Thread safety: every method may be called from any thread. References
// returned by counter()/histogram()/gauge() stay valid for the Metrics'
// lifetime, so hot paths look a series up once and keep it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace runsync {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound, then +Inf; and the sum.
  std::vector<std::uint64_t> cumulative() const;
  double sum() const;
  std::uint64_t count() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

// Bucket bounds for latencies in seconds, from 100 µs to 30 s.
std::vector<double> latency_buckets();

// Bucket bounds for whole poll cycles in seconds, from 100 ms to 1 h (a
// full sync of a large project takes minutes).
std::vector<double> poll_duration_buckets();

class Metrics {
 public:
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {},
                       std::vector<double> bounds = latency_buckets());
  // A gauge whose value is read when rendering (e.g. queue depth).
  void gauge_callback(const std::string& name, const std::string& help, const Labels& labels,
                      std::function<double()> read);
  // A counter whose value is read when rendering (e.g. CPU seconds).
  void counter_callback(const std::string& name, const std::string& help, const Labels& labels,
                        std::function<double()> read);
  // Runs `collect` at the start of every render(), outside the registry's
  // lock, so it may set gauges (e.g. figures read from the database).
  void add_collector(std::function<void()> collect);

  // The sum of a counter family's series whose labels include `match`
  // (all series when empty); 0 for an unknown family.
  std::uint64_t counter_sum(const std::string& name, const Labels& match = {}) const;

  // The whole registry in text format 0.0.4.
  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> read;
  };
  struct Family {
    std::string help;
    Type type;
    std::map<std::string, Series> series;  // by rendered label set
  };
  Family& family(const std::string& name, const std::string& help, Type type);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  mutable std::mutex collect_mu_;  // one collection at a time
  std::vector<std::function<void()>> collectors_;  // guarded by collect_mu_
};

// The standard process_* metrics, read from /proc/self when rendering:
// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds.
void register_process_metrics(Metrics& metrics);

}  // namespace runsync
