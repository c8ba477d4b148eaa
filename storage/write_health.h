// Whether the database takes the daemon's writes, told to `runsync status`
// (another process, which cannot see a failed write: it never writes).
//
// The daemon keeps "<database>.health" beside the database while it runs:
// one line, "ok" or "failed SINCE ERROR" (SINCE in unix seconds), and a
// shared flock() on it that says the line is current. The file is sized
// when taken, so recording a failure later rewrites bytes the file already
// has and needs no new disk space: a full disk is one of the failures it
// records.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/status.h"

namespace runsync {

class WriteHealthFile {
 public:
  // The most of an error message the file keeps.
  static constexpr std::size_t kMaxErrorBytes = 3000;

  // Creates or opens "<database_path>.health", records "ok" and holds the
  // lock until destroyed. Errors name the file.
  static StatusOr<std::unique_ptr<WriteHealthFile>> hold(const std::string& database_path);
  ~WriteHealthFile();
  WriteHealthFile(const WriteHealthFile&) = delete;
  WriteHealthFile& operator=(const WriteHealthFile&) = delete;

  // Records the outcome of the latest write transaction at `now` (unix s):
  // ok, or its error (from the first failure in a row, SINCE stays that of
  // the first). Rewrites the file only when the line changes. Returns true
  // when this call changed it from ok to failed or back, and an error when
  // the file could not be written. Thread-safe.
  StatusOr<bool> record(const Status& outcome, std::int64_t now);

 private:
  WriteHealthFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status write_line(const std::string& line);

  int fd_;
  std::string path_;
  std::mutex mu_;
  std::optional<std::int64_t> failing_since_;  // guarded by mu_
  std::string error_;                          // guarded by mu_
};

struct WriteFailure {
  std::int64_t since = 0;  // unix s of the first failure in a row
  std::string error;
};

// What the process holding "<database_path>.health" recorded: nullopt when
// its last write succeeded, and when no process holds the file (none runs,
// so nothing in it is current). A file that cannot be read, or a line it
// does not understand, counts as nothing recorded. Never throws.
std::optional<WriteFailure> read_write_failure(const std::string& database_path);

}  // namespace runsync
