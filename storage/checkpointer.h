// Checkpoints the WAL from its own connection and thread, so the writer's
// commits never include a checkpoint (which copies pages and fsyncs the
// database file, and made the writer's commit latency spiky). PASSIVE: it
// never waits for readers or blocks the writer.
//
// Thread safety: construct and destroy on one thread; the work happens on
// the checkpointer's own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"

namespace runsync {

class Checkpointer {
 public:
  // Opens its own connection to `path` (which must exist and be migrated)
  // and checkpoints every `interval` until destroyed.
  static StatusOr<std::unique_ptr<Checkpointer>> start(const std::string& path,
                                                       std::chrono::milliseconds interval);
  ~Checkpointer();  // stops after a final checkpoint
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Checkpoints performed and the last error (empty when none).
  std::uint64_t checkpoints() const { return checkpoints_.load(); }
  std::string last_error() const;

 private:
  struct Impl;
  explicit Checkpointer(std::unique_ptr<Impl> impl, std::chrono::milliseconds interval);
  void loop();

  std::unique_ptr<Impl> impl_;
  std::chrono::milliseconds interval_;
  std::atomic<std::uint64_t> checkpoints_{0};
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace runsync
