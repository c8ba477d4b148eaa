// The command line of a benchmark: flags, each with at most one value.
#pragma once

#include <string>
#include <vector>

namespace runsync::bench {

// Reads argv flag by flag. Every mistake (a flag without its value, a bad
// number, an unknown flag) prints "error: ..." and `usage` to stderr and
// exits 2; -h and --help print `usage` to stdout and exit 0. Typical use:
//
//   Args args(argc, argv, kUsage);
//   while (args.next()) {
//     if (args.is("--seconds")) {
//       seconds = args.number(0.1);
//     } else {
//       args.unknown();
//     }
//   }
class Args {
 public:
  // `usage`: the text after "usage: PROGRAM ", e.g. "[--quick] [--seconds S]\n...".
  Args(int argc, char** argv, std::string usage);

  // Moves to the next flag; false when there is none left.
  bool next();
  bool is(const char* flag) const { return flag_ == flag; }
  const std::string& flag() const { return flag_; }

  // The current flag's value (the next argument).
  std::string text();
  // The value as a number >= `min`.
  double number(double min);
  // The value as a whole number in [min, max].
  int integer(int min, int max);
  // The value as a comma-separated list of whole numbers in [min, max];
  // "" is the empty list.
  std::vector<int> list(int min, int max) { return list_of(text(), min, max); }
  // `text` (a value already read) as such a list.
  std::vector<int> list_of(const std::string& text, int min, int max) const;

  // The current flag is not one the benchmark knows.
  [[noreturn]] void unknown() const;
  [[noreturn]] void fail(const std::string& error) const;

 private:
  int argc_;
  char** argv_;
  std::string usage_;
  int at_ = 0;
  std::string flag_;
};

// The command line as typed, arguments separated by a space.
std::string command_line(int argc, char** argv);

}  // namespace runsync::bench
