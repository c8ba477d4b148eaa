#include "storage/wal_sync.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace runsync {
namespace {

// fdatasync of the -wal file through a descriptor of its own.
class FileWalSync final : public WalSync {
 public:
  explicit FileWalSync(int fd) : fd_(fd) {}
  ~FileWalSync() override { ::close(fd_); }
  FileWalSync(const FileWalSync&) = delete;
  FileWalSync& operator=(const FileWalSync&) = delete;
  Status sync() override {
    if (::fdatasync(fd_) == 0) return Status::ok();
    return Status::error(std::string("syncing the WAL: ") + std::strerror(errno));
  }

 private:
  int fd_;
};

}  // namespace

StatusOr<std::unique_ptr<WalSync>> open_wal_sync(sqlite3* db) {
  const char* db_name = sqlite3_db_filename(db, "main");
  if (db_name == nullptr || *db_name == '\0') return Status::error("the database has no file");
  const std::string wal_path = sqlite3_filename_wal(db_name);
  const int fd = ::open(wal_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::error("opening " + wal_path + ": " + std::strerror(errno));
  std::unique_ptr<WalSync> wal_sync = std::make_unique<FileWalSync>(fd);
  // SQLite syncs the directory with a new file's first sync, which is now
  // ours: make the -wal file's name durable once, here.
  const std::string dir = std::filesystem::path(wal_path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Status::error("opening " + dir + ": " + std::strerror(errno));
  const int rc = ::fsync(dir_fd);
  const int err = errno;
  ::close(dir_fd);
  if (rc != 0) return Status::error("syncing " + dir + ": " + std::strerror(err));
  if (Status s = wal_sync->sync(); !s.is_ok()) return s;
  return wal_sync;
}

}  // namespace runsync
