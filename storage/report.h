// Read-only queries over the mirror for `runsync status` and /readyz.
// Opens its own read-only connection: never blocks the writer, never writes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace runsync {

struct PollSummary {
  std::int64_t project_id = 0;
  std::string kind;
  std::int64_t started_at = 0;
  std::optional<std::int64_t> finished_at;
  std::optional<std::string> error;  // nullopt when the cycle succeeded
  std::optional<std::int64_t> last_success_at;
};

struct MirrorReport {
  int schema_version = 0;
  std::map<std::string, std::int64_t> runs_by_state;
  std::optional<std::int64_t> last_webhook_at;  // received_at of the newest delivery
  std::map<std::string, std::int64_t> webhook_results_last_hour;
  std::vector<PollSummary> polls;  // the latest cycle of each project
  std::map<std::string, std::int64_t> outbox_by_state;  // empty before the outbox exists
};

// One outbox row as the CLI shows it.
struct CommandStatus {
  std::string command;
  std::int64_t target = 0;
  std::string state;
  std::int64_t attempts = 0;
  std::optional<std::string> last_error;
  std::optional<std::string> result;
};

// Reads outbox row `id` (read-only); nullopt when there is no such row.
StatusOr<std::optional<CommandStatus>> read_command(const std::string& path, std::int64_t id);

// Tells cheaply whether another connection committed since the last call
// (PRAGMA data_version), so a worker can look for new outbox rows without
// scanning on every tick. Not thread-safe; one owner.
class ChangeWatcher {
 public:
  static StatusOr<std::unique_ptr<ChangeWatcher>> open(const std::string& path);
  ~ChangeWatcher();
  // True the first time and whenever the database changed since.
  bool changed();

 private:
  struct Impl;
  explicit ChangeWatcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads the report from the database at `path` (read-only). `now` is unix s.
StatusOr<MirrorReport> read_mirror_report(const std::string& path, std::int64_t now);

}  // namespace runsync
