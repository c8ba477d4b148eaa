// Checkpoints the WAL from its own connection and thread, so the writer's
// commits never include a checkpoint (which copies pages and fsyncs the
// database file while every job of the batch waits). PASSIVE: it never
// waits for readers.
//
// It also keeps the WAL from growing without bound under sustained writes:
// when the WAL holds at least Options::restart_frames, it checkpoints again
// until a pass has little left to copy, then copies the rest with the
// writer held off (Options::gate), so the writer's next transaction starts
// the WAL over from its first frame (see WriteGate). The writer waits only
// for those last frames, and not longer than Options::hold: when the disk
// is too slow for that, the writer goes on and the checkpointer tries again
// at its next interval, waiting up to Options::long_hold once the WAL is
// four times the size that calls for a restart.
//
// SQLite reuses the -wal file from its start without shrinking it, so a
// burst would leave it at the largest size it reached: once the writer has
// been quiet for an interval with every frame copied, a WAL file larger than
// Options::truncate_above_bytes is truncated to nothing (a TRUNCATE
// checkpoint, with the writer held off through the gate and no wait for
// readers; one in the way only puts it off to a later interval).
//
// A checkpoint that fails (a full disk, an I/O error; not SQLITE_BUSY, which
// only means a reader or the writer was in the way) leaves the WAL growing
// until one succeeds: Options::on_status is told, and the next interval
// tries again.
//
// For a WAL whose checkpoints another program owns (a replicator such as
// Litestream: [storage] checkpoints = "external"), Options::wal_frames and
// Options::from_frames make it a backstop: it checkpoints only while the
// WAL holds at least from_frames frames, which that program keeps it below
// while it does its job.
//
// Thread safety: construct and destroy on one thread; the work happens on
// the checkpointer's own thread, where on_status is called too.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "storage/write_gate.h"

namespace runsync {

class Checkpointer {
 public:
  struct Options {
    std::chrono::milliseconds interval{250};  // between checkpoints
    // The writer's gate; without it the WAL starts over only when a
    // checkpoint happens to finish between two of the writer's commits.
    std::shared_ptr<WriteGate> gate;
    // WAL frames (pages) from which a checkpoint holds the writer off to
    // finish: 256 MiB of 4 KiB pages. The hold takes about one checkpoint's
    // two fsyncs: the bigger this, the rarer the holds and the bigger the
    // file.
    int restart_frames = 65536;
    // How long a hold may keep the writer waiting; from four times
    // restart_frames on, long_hold.
    std::chrono::milliseconds hold{100};
    std::chrono::milliseconds long_hold{1000};
    // A -wal file above this size is truncated once the writer is quiet.
    std::int64_t truncate_above_bytes = 4 << 20;
    // Called after every failed checkpoint with SQLite's message and how
    // many have failed in a row, and once after the first success that
    // follows failures, with an empty message and 0.
    std::function<void(const std::string& error, std::uint64_t failed_in_a_row)> on_status;
    // When set: the frames in the WAL (Store::wal_frames); an interval does
    // nothing while they are fewer than from_frames. on_backstop is called
    // with their number when an interval checkpoints after one that did not.
    std::shared_ptr<const std::atomic<int>> wal_frames;
    int from_frames = 0;
    std::function<void(int frames)> on_backstop;
  };

  // Opens its own connection to `path` (which must exist and be migrated)
  // and checkpoints every `options.interval` until destroyed.
  static StatusOr<std::unique_ptr<Checkpointer>> start(const std::string& path, Options options);
  ~Checkpointer();  // stops after a final checkpoint
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Checkpoints performed, those that finished with the writer held off
  // (after which its next transaction starts the WAL over), those that
  // failed, and the last error (empty once one succeeded again). Truncations
  // of the -wal file count as checkpoints too.
  std::uint64_t checkpoints() const { return checkpoints_.load(); }
  std::uint64_t held_checkpoints() const { return held_checkpoints_.load(); }
  std::uint64_t failed_checkpoints() const { return failed_checkpoints_.load(); }
  std::string last_error() const;
  // Intervals that did nothing because the WAL held fewer than
  // Options::from_frames.
  std::uint64_t skipped_intervals() const { return skipped_intervals_.load(); }

 private:
  struct Impl;
  Checkpointer(std::unique_ptr<Impl> impl, Options options, std::string wal_path);
  void loop();
  void run_once();  // checkpoints, and holds the writer off to finish if needed
  // One checkpoint (PASSIVE unless `mode` says otherwise): the SQLite
  // result, frames in the WAL and frames copied into the database.
  int checkpoint(int& log_frames, int& done_frames, int mode);
  // Truncates a -wal file over truncate_above_bytes whose frames are all in
  // the database, if the writer has appended none since the last interval.
  void truncate_when_quiet(int log_frames);

  std::unique_ptr<Impl> impl_;
  Options options_;
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> held_checkpoints_{0};
  std::atomic<std::uint64_t> failed_checkpoints_{0};
  std::atomic<std::uint64_t> skipped_intervals_{0};
  std::uint64_t failed_in_a_row_ = 0;  // the checkpointer's thread only
  bool backstop_active_ = false;       // the checkpointer's thread only
  int last_log_frames_ = -1;           // the checkpointer's thread only
  std::string wal_path_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace runsync
