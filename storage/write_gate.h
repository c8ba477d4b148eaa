// Lets another thread run something between the writer's transactions
// while holding new ones off for a while.
//
// The Checkpointer needs it: SQLite starts the WAL over from its first frame
// only when a write transaction begins with every frame already copied into
// the database. A checkpoint running beside a busy writer never gets there
// (the writer appends while it copies), so under sustained load the -wal file
// would grow without bound, each commit writing to new blocks. Holding the
// writer off while a checkpoint copies the last few frames makes its next
// transaction start the WAL over.
//
// Thread safety: all members may be called from any thread; enter/leave
// pairs from the one writer thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/clock.h"

namespace runsync {

class WriteGate {
 public:
  // Holds are timed by `clock`, which must outlive the gate.
  explicit WriteGate(const Clock& clock = real_clock()) : clock_(clock) {}

  // Around each write transaction. enter() waits while a hold is pending or
  // running, but not past the hold's time limit.
  void enter() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, clock_.until(deadline_), [&] { return holds_ == 0; });
    open_ = true;
    if (holds_ > 0) broken_ = true;
  }
  void leave() {
    std::lock_guard lock(mu_);
    open_ = false;
    if (holds_ > 0) cv_.notify_all();
  }

  // Waits until no transaction is open, then runs `fn`. No transaction
  // begins while it runs, for up to `limit` from this call (the wait for
  // the open one to end included); after that one may, and `fn` must
  // tolerate it. Returns whether none began. One hold at a time.
  template <typename Fn>
  bool hold_while(Clock::Duration limit, Fn&& fn) {
    {
      std::unique_lock lock(mu_);
      ++holds_;
      broken_ = false;
      deadline_ = clock_.now() + limit;
      cv_.wait(lock, [&] { return !open_; });
    }
    struct Release {
      WriteGate* gate;
      ~Release() {
        std::lock_guard lock(gate->mu_);
        --gate->holds_;
        gate->deadline_ = Clock::TimePoint::min();
        gate->cv_.notify_all();
      }
    } release{this};
    fn();
    std::lock_guard lock(mu_);
    return !broken_;
  }

 private:
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;    // a transaction is running
  int holds_ = 0;        // a hold is pending or running
  bool broken_ = false;  // a transaction began during the hold
  Clock::TimePoint deadline_ = Clock::TimePoint::min();
};

}  // namespace runsync
