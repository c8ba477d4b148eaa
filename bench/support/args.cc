#include "bench/support/args.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <utility>

namespace runsync::bench {

Args::Args(int argc, char** argv, std::string usage)
    : argc_(argc), argv_(argv), usage_(std::move(usage)) {}

bool Args::next() {
  if (++at_ >= argc_) return false;
  flag_ = argv_[at_];
  if (flag_ == "-h" || flag_ == "--help") {
    std::printf("usage: %s %s", argv_[0], usage_.c_str());
    std::exit(0);
  }
  return true;
}

std::string Args::text() {
  if (at_ + 1 >= argc_) fail(flag_ + " needs a value");
  return argv_[++at_];
}

double Args::number(double min) {
  const std::string value = text();
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !(v >= min)) fail("bad value for " + flag_ + ": " + value);
  return v;
}

int Args::integer(int min, int max) {
  const std::string value = text();
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < min || v > max) {
    fail("bad value for " + flag_ + ": " + value);
  }
  return static_cast<int>(v);
}

std::vector<int> Args::list_of(const std::string& text, int min, int max) const {
  std::vector<int> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < min || v > max) {
      fail("bad value '" + item + "' in " + flag_);
    }
    out.push_back(static_cast<int>(v));
  }
  return out;
}

void Args::unknown() const { fail("unknown option " + flag_); }

void Args::fail(const std::string& error) const {
  std::fprintf(stderr, "error: %s\n\nusage: %s %s", error.c_str(), argv_[0], usage_.c_str());
  std::exit(2);
}

std::string command_line(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) out += (i ? " " : "") + std::string(argv[i]);
  return out;
}

}  // namespace runsync::bench
