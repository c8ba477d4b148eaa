#include "bench/support/stats.h"

#include <cstdlib>
#include <sstream>

namespace runsync::bench {

double percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return percentile_of_sorted(samples, p);
}

double max_of(const std::vector<double>& samples) {
  return samples.empty() ? 0.0 : *std::max_element(samples.begin(), samples.end());
}

double metric_value(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  const std::string prefix = series + " ";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return std::strtod(line.c_str() + prefix.size(), nullptr);
  }
  return -1;
}

}  // namespace runsync::bench
