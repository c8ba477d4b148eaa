// A cap on the size of the files this process writes, so that tests can
// make the disk refuse a write (EFBIG, as from a full disk) at a chosen size.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

namespace runsync::testing {

// Caps the size of files this process writes (RLIMIT_FSIZE, soft limit
// only) and ignores SIGXFSZ, so that a write past the cap fails with EFBIG
// instead of killing the process; both restored on destruction.
class FileSizeCap {
 public:
  explicit FileSizeCap(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ignore, &saved_action_);
    rlimit capped = saved_;
    capped.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &capped), 0);
  }
  void lift() {
    if (lifted_) return;
    lifted_ = true;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &saved_), 0);
    sigaction(SIGXFSZ, &saved_action_, nullptr);
  }
  ~FileSizeCap() { lift(); }

 private:
  rlimit saved_{};
  struct sigaction saved_action_ {};
  bool lifted_ = false;
};

}  // namespace runsync::testing
