#include "storage/write_health.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "storage/file_lock.h"

namespace runsync {
namespace {

// The file's size: room for "failed SINCE " and kMaxErrorBytes of error.
constexpr std::size_t kFileBytes = 4096;

std::string health_path(const std::string& database_path) { return database_path + ".health"; }

}  // namespace

StatusOr<std::unique_ptr<WriteHealthFile>> WriteHealthFile::hold(const std::string& database_path) {
  const std::string path = health_path(database_path);
  StatusOr<int> fd = open_shared_locked(path, O_RDWR | O_CREAT);
  if (!fd) return fd.status();
  std::unique_ptr<WriteHealthFile> file(new WriteHealthFile(fd.value(), path));
  if (Status s = file->write_line("ok"); !s.is_ok()) return s;
  return file;
}

WriteHealthFile::~WriteHealthFile() { ::close(fd_); }

Status WriteHealthFile::write_line(const std::string& line) {
  // The line, then newlines to the end of the file: a shorter line never
  // leaves the tail of a longer one behind, and the size never changes.
  std::string block = line.substr(0, kFileBytes - 1);
  block.resize(kFileBytes, '\n');
  std::size_t done = 0;
  while (done < block.size()) {
    const ssize_t n =
        ::pwrite(fd_, block.data() + done, block.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::error("cannot write " + path_ + ": " + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

StatusOr<bool> WriteHealthFile::record(const Status& outcome, std::int64_t now) {
  std::lock_guard lock(mu_);
  if (outcome.is_ok()) {
    if (!failing_since_) return false;
    failing_since_.reset();
    error_.clear();
    if (Status s = write_line("ok"); !s.is_ok()) return s;
    return true;
  }
  const bool began = !failing_since_;
  std::string error = outcome.message().substr(0, kMaxErrorBytes);
  for (char& c : error) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (!began && error == error_) return false;
  if (began) failing_since_ = now;
  error_ = std::move(error);
  if (Status s = write_line("failed " + std::to_string(*failing_since_) + " " + error_);
      !s.is_ok()) {
    return s;
  }
  return began;
}

std::optional<WriteFailure> read_write_failure(const std::string& database_path) {
  const int fd = ::open(health_path(database_path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  // Free means no process holds it (taking it here drops when closed).
  const bool held = locked_elsewhere(fd);
  char buffer[kFileBytes];
  const ssize_t n = held ? ::pread(fd, buffer, sizeof buffer, 0) : -1;
  ::close(fd);
  if (n <= 0) return std::nullopt;
  std::string_view line(buffer, static_cast<std::size_t>(n));
  line = line.substr(0, line.find('\n'));
  constexpr std::string_view kFailed = "failed ";
  if (!line.starts_with(kFailed)) return std::nullopt;
  line.remove_prefix(kFailed.size());
  WriteFailure failure;
  const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), failure.since);
  if (ec != std::errc() || end == line.data() + line.size() || *end != ' ') return std::nullopt;
  failure.error.assign(end + 1, line.data() + line.size());
  return failure;
}

}  // namespace runsync
