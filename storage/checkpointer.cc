#include "storage/checkpointer.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include "storage/database.h"

namespace runsync {

struct Checkpointer::Impl {
  std::unique_ptr<SQLite::Database> db;
};

StatusOr<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::string& path,
                                                            std::chrono::milliseconds interval) {
  OpenOptions options;
  options.create = false;
  auto db = open_database(path, options);
  if (!db) return db.status();
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(db).value();
  return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(impl), interval));
}

Checkpointer::Checkpointer(std::unique_ptr<Impl> impl, std::chrono::milliseconds interval)
    : impl_(std::move(impl)), interval_(interval), thread_([this] { loop(); }) {}

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

void Checkpointer::loop() {
  for (;;) {
    bool stop = false;
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, interval_, [&] { return stopping_; });
      stop = stopping_;
    }
    int log_frames = 0;
    int done_frames = 0;
    const int rc = sqlite3_wal_checkpoint_v2(impl_->db->getHandle(), nullptr,
                                             SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
    {
      std::lock_guard lock(mu_);
      if (rc == SQLITE_OK || rc == SQLITE_BUSY) {
        last_error_.clear();
      } else {
        last_error_ = sqlite3_errstr(rc);
      }
    }
    if (rc == SQLITE_OK) checkpoints_.fetch_add(1);
    if (stop) return;
  }
}

}  // namespace runsync
