#include "daemon/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <limits>
#include <stdexcept>

namespace runsync {
namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + escape_label(labels[i].second) + "\"";
  }
  return out + "}";
}

// Adds one label to an already rendered label set.
std::string with_label(const std::string& rendered, const std::string& key, const std::string& v) {
  const std::string extra = key + "=\"" + v + "\"";
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

// Fields of /proc/self/stat after the command name, so that fields()[0] is
// field 3 (state) of proc(5); empty when unreadable.
std::vector<std::string> proc_stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const std::size_t close = line.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// proc(5) field `n` (1-based) of /proc/self/stat as a number; NaN when absent.
double proc_stat_field(const std::vector<std::string>& fields, std::size_t n) {
  if (n < 3 || n - 3 >= fields.size()) return std::nan("");
  return std::strtod(fields[n - 3].c_str(), nullptr);
}

double boot_time() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nan("");
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_micros_.fetch_add(static_cast<std::uint64_t>(v * 1e6), std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

double Histogram::sum() const { return static_cast<double>(sum_micros_.load()) / 1e6; }
std::uint64_t Histogram::count() const { return count_.load(); }

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,   30};
}

std::vector<double> poll_duration_buckets() {
  return {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600};
}

Metrics::Family& Metrics::family(const std::string& name, const std::string& help, Type type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.help = help;
    it->second.type = type;
  } else if (it->second.type != type) {
    throw std::logic_error("metric " + name + " registered with two types");
  }
  return it->second;
}

Counter& Metrics::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = family(name, help, Type::kCounter).series[render_labels(labels)];
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = family(name, help, Type::kGauge).series[render_labels(labels)];
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                              const Labels& labels, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  Series& s = family(name, help, Type::kHistogram).series[render_labels(labels)];
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(bounds));
  return *s.histogram;
}

void Metrics::gauge_callback(const std::string& name, const std::string& help,
                             const Labels& labels, std::function<double()> read) {
  std::lock_guard lock(mu_);
  family(name, help, Type::kGauge).series[render_labels(labels)].read = std::move(read);
}

void Metrics::counter_callback(const std::string& name, const std::string& help,
                               const Labels& labels, std::function<double()> read) {
  std::lock_guard lock(mu_);
  family(name, help, Type::kCounter).series[render_labels(labels)].read = std::move(read);
}

void Metrics::add_collector(std::function<void()> collect) {
  std::lock_guard lock(collect_mu_);
  collectors_.push_back(std::move(collect));
}

std::uint64_t Metrics::counter_sum(const std::string& name, const Labels& match) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  std::uint64_t total = 0;
  for (const auto& [labels, series] : it->second.series) {
    if (!series.counter) continue;
    bool all = true;
    for (const auto& [k, v] : match) {
      if (labels.find(k + "=\"" + escape_label(v) + "\"") == std::string::npos) all = false;
    }
    if (all) total += series.counter->value();
  }
  return total;
}

std::string Metrics::render() const {
  {
    std::lock_guard collecting(collect_mu_);
    for (const auto& collect : collectors_) collect();
  }
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    const char* type = fam.type == Type::kCounter ? "counter"
                       : fam.type == Type::kGauge ? "gauge"
                                                  : "histogram";
    out += "# HELP " + name + " " + fam.help + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, s] : fam.series) {
      if (s.counter) {
        out += name + labels + " " + number(static_cast<double>(s.counter->value())) + "\n";
      } else if (s.read) {
        out += name + labels + " " + number(s.read()) + "\n";
      } else if (s.gauge) {
        out += name + labels + " " + number(s.gauge->value()) + "\n";
      } else if (s.histogram) {
        const auto cum = s.histogram->cumulative();
        const auto& bounds = s.histogram->bounds();
        for (std::size_t i = 0; i < bounds.size(); ++i) {
          out += name + "_bucket" + with_label(labels, "le", number(bounds[i])) + " " +
                 number(static_cast<double>(cum[i])) + "\n";
        }
        out += name + "_bucket" + with_label(labels, "le", "+Inf") + " " +
               number(static_cast<double>(cum.back())) + "\n";
        out += name + "_sum" + labels + " " + number(s.histogram->sum()) + "\n";
        out += name + "_count" + labels + " " + number(static_cast<double>(cum.back())) + "\n";
      }
    }
  }
  return out;
}

void register_process_metrics(Metrics& metrics) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  metrics.counter_callback("process_cpu_seconds_total", "User and system CPU time spent in seconds",
                           {}, [ticks] {
                             const auto f = proc_stat_fields();
                             return (proc_stat_field(f, 14) + proc_stat_field(f, 15)) / ticks;
                           });
  metrics.gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes", {},
                         [page] { return proc_stat_field(proc_stat_fields(), 24) * page; });
  metrics.gauge_callback("process_virtual_memory_bytes", "Virtual memory size in bytes", {},
                         [] { return proc_stat_field(proc_stat_fields(), 23); });
  metrics.gauge_callback("process_open_fds", "Number of open file descriptors", {}, [] {
    std::error_code ec;
    double n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec)) {
      ++n;
    }
    return ec ? std::nan("") : n;
  });
  metrics.gauge_callback("process_max_fds", "Maximum number of open file descriptors", {}, [] {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nan("");
    return limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                           : static_cast<double>(limit.rlim_cur);
  });
  // Fixed for the process' life: read once.
  const double start = boot_time() + proc_stat_field(proc_stat_fields(), 22) / ticks;
  metrics.gauge_callback("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds", {},
                         [start] { return start; });
}

}  // namespace runsync
