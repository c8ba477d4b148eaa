#include "storage/checkpointer.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <cstring>
#include <filesystem>

#include "storage/database.h"

namespace runsync {

struct Checkpointer::Impl {
  std::unique_ptr<SQLite::Database> db;
};

StatusOr<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::string& path,
                                                            Options options) {
  OpenOptions open_options;
  open_options.create = false;
  auto db = open_database(path, open_options);
  if (!db) return db.status();
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(db).value();
  return std::unique_ptr<Checkpointer>(
      new Checkpointer(std::move(impl), std::move(options), path + "-wal"));
}

Checkpointer::Checkpointer(std::unique_ptr<Impl> impl, Options options, std::string wal_path)
    : impl_(std::move(impl)),
      options_(std::move(options)),
      wal_path_(std::move(wal_path)),
      thread_([this] { loop(); }) {}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string Checkpointer::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

int Checkpointer::checkpoint(int& log_frames, int& done_frames, int mode) {
  log_frames = 0;
  done_frames = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(impl_->db->getHandle(), nullptr, mode, &log_frames, &done_frames);
  if (rc == SQLITE_OK) checkpoints_.fetch_add(1);
  if (rc == SQLITE_BUSY) return rc;  // someone was in the way: not a failure
  std::string error;
  if (rc != SQLITE_OK) {
    // SQLite's message ("disk I/O error", "database or disk is full"),
    // with the system's reason when there is one ("No space left on device").
    sqlite3* handle = impl_->db->getHandle();
    error = sqlite3_errmsg(handle);
    if (const int e = sqlite3_system_errno(handle); e != 0) {
      error.append(" (").append(std::strerror(e)).append(")");
    }
    failed_checkpoints_.fetch_add(1);
    ++failed_in_a_row_;
  }
  {
    std::lock_guard lock(mu_);
    last_error_ = error;
  }
  if (rc != SQLITE_OK) {
    if (options_.on_status) options_.on_status(error, failed_in_a_row_);
  } else if (failed_in_a_row_ > 0) {
    failed_in_a_row_ = 0;
    if (options_.on_status) options_.on_status("", 0);
  }
  return rc;
}

void Checkpointer::run_once() {
  // Each pass copies what the writer appended during the last one. Once a
  // pass had little to copy, or not much less than the pass before (each
  // takes about as long as its two fsyncs), the next copies the rest with
  // the writer held off, which then starts the WAL over. Not when a reader
  // kept frames from being copied (holding the writer would not help) nor
  // while the WAL is small. The hold lasts at most Options::hold: a disk
  // that slow lets the writer go on and the next interval tries again;
  // only a WAL four times the size that calls for a restart is worth a
  // longer wait.
  if (options_.wal_frames) {
    const int frames = options_.wal_frames->load(std::memory_order_relaxed);
    if (frames < options_.from_frames) {
      backstop_active_ = false;
      skipped_intervals_.fetch_add(1);
      return;
    }
    if (!backstop_active_ && options_.on_backstop) options_.on_backstop(frames);
    backstop_active_ = true;
  }
  constexpr int kHeldFrames = 256;  // what a held pass may expect to copy
  constexpr int kMaxPasses = 8;
  int log_frames = 0;
  int done_frames = 0;
  int last_copied = 0;
  for (int pass = 0;; ++pass) {
    const int copied_before = done_frames;
    int rc = checkpoint(log_frames, done_frames, SQLITE_CHECKPOINT_PASSIVE);
    if (pass == 0 && rc == SQLITE_OK && done_frames == log_frames) truncate_when_quiet(log_frames);
    if (!options_.gate || rc != SQLITE_OK || done_frames != log_frames ||
        log_frames < options_.restart_frames) {
      return;
    }
    const int copied = log_frames - copied_before;
    const bool converged =
        pass > 0 && (copied <= kHeldFrames || copied > last_copied / 2);
    last_copied = copied;
    if (converged || pass + 1 == kMaxPasses) {
      const auto limit =
          log_frames / 4 >= options_.restart_frames ? options_.long_hold : options_.hold;
      const bool held = options_.gate->hold_while(
          limit, [&] { rc = checkpoint(log_frames, done_frames, SQLITE_CHECKPOINT_PASSIVE); });
      if (held && rc == SQLITE_OK && done_frames == log_frames) held_checkpoints_.fetch_add(1);
      return;
    }
  }
}

void Checkpointer::truncate_when_quiet(int log_frames) {
  const bool quiet = log_frames == last_log_frames_;
  last_log_frames_ = log_frames;
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(wal_path_, ec);
  if (!quiet || ec || static_cast<std::int64_t>(bytes) <= options_.truncate_above_bytes) return;
  // Without waiting for a reader on an older snapshot: SQLITE_BUSY then, and
  // the next quiet interval tries again.
  sqlite3* handle = impl_->db->getHandle();
  auto truncate = [&] {
    sqlite3_busy_timeout(handle, 0);
    int frames = 0;
    int done = 0;
    (void)checkpoint(frames, done, SQLITE_CHECKPOINT_TRUNCATE);
    sqlite3_busy_timeout(handle, OpenOptions{}.busy_timeout_ms);
  };
  if (options_.gate) {
    (void)options_.gate->hold_while(options_.hold, truncate);
  } else {
    truncate();
  }
  last_log_frames_ = -1;
}

void Checkpointer::loop() {
  for (;;) {
    bool stop = false;
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, options_.interval, [&] { return stopping_; });
      stop = stopping_;
    }
    run_once();
    if (stop) return;
  }
}

}  // namespace runsync
