// Summaries of measured samples, shared by the benchmarks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace runsync::bench {

// The sample at rank `p` (0 to 1) of `sorted` (ascending), the nearest
// rank to p * (size - 1); 0 when empty.
template <typename T>
double percentile_of_sorted(const std::vector<T>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]);
}

// percentile_of_sorted of `samples` in any order.
double percentile(std::vector<double> samples, double p);

// The largest of `samples`; 0 when empty.
double max_of(const std::vector<double>& samples);

// The value of the series `series` (with its labels, if any, as written:
// `name{label="v"}`) in a Prometheus text page such as the daemon's
// /metrics; -1 when the page has no such line.
double metric_value(const std::string& page, const std::string& series);

}  // namespace runsync::bench
