// The child-process helper the end-to-end tests and benchmarks share.
#include "support/process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <stdexcept>

#include "support/temp_dir.h"

namespace runsync::testing {
namespace {

TEST(ChildProcess, AddsAndRemovesEnvironmentVariables) {
  TempDir dir;
  ::setenv("RUNSYNC_PROCESS_TEST_GONE", "1", 1);
  ChildProcess env({"/usr/bin/env"}, dir.file("env.log"), {"RUNSYNC_PROCESS_TEST_ADDED=yes"},
                   {"RUNSYNC_PROCESS_TEST_GONE"});
  auto status = env.wait(std::chrono::seconds(20));
  ::unsetenv("RUNSYNC_PROCESS_TEST_GONE");
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_NE(env.log().find("RUNSYNC_PROCESS_TEST_ADDED=yes\n"), std::string::npos) << env.log();
  EXPECT_EQ(env.log().find("RUNSYNC_PROCESS_TEST_GONE"), std::string::npos) << env.log();
  EXPECT_NE(env.log().find("PATH="), std::string::npos);  // the rest is inherited
}

TEST(ChildProcess, SaysWhyAProgramCannotStart) {
  TempDir dir;
  try {
    ChildProcess missing({dir.file("no-such-program")}, dir.file("missing.log"));
    FAIL() << "started a program that does not exist";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
}

TEST(ChildProcess, WaitReportsAnExitSeenEarlier) {
  TempDir dir;
  ChildProcess quick({"/bin/sh", "-c", "exit 3"}, dir.file("sh.log"));
  ASSERT_TRUE(wait_until([&] { return quick.exited(); }));
  auto status = quick.wait(std::chrono::seconds(0));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 3);
}

}  // namespace
}  // namespace runsync::testing
