// Read-only queries over the mirror for `runsync status` and /metrics.
// Opens its own read-only connection: never blocks the writer, never writes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace SQLite {
class Database;
}

namespace runsync {

// How a poll cycle stands. A cycle with neither finished_at nor error was
// not finished: it is running when a process that polls holds the
// database's PollerMark, else it was cut off (a stop, a crash).
enum class CycleState { kOk, kFailed, kRunning, kInterrupted };
const char* cycle_state_name(CycleState state);  // "ok", "failed", "running", "interrupted"

struct PollSummary {
  std::int64_t project_id = 0;
  std::string kind;
  std::int64_t started_at = 0;
  std::optional<std::int64_t> finished_at;
  std::optional<std::string> error;  // set when the cycle failed
  CycleState state = CycleState::kOk;
  std::optional<std::int64_t> last_success_at;  // finished_at of the newest successful cycle
};

struct MirrorReport {
  int schema_version = 0;
  std::map<std::string, std::int64_t> runs_by_state;
  std::optional<std::int64_t> last_webhook_at;  // received_at of the newest delivery
  std::map<std::string, std::int64_t> webhook_results_last_hour;
  std::vector<PollSummary> polls;  // the latest cycle of each project
  std::map<std::string, std::int64_t> outbox_by_state;  // empty before the outbox exists
  // created_at of the oldest command not yet sent or in flight
  // (state pending or sending).
  std::optional<std::int64_t> oldest_pending_at;
  // The database file's size in bytes (without its -wal file), and how many
  // of them are free pages, which new rows reuse before the file grows.
  std::int64_t file_bytes = 0;
  std::int64_t free_bytes = 0;
  std::int64_t wal_bytes = 0;                     // the -wal file's size (0 when there is none)
  std::optional<std::int64_t> oldest_webhook_at;  // received_at of the oldest journal row
  // Refreshes TestRail webhook hints asked for that are not done yet, and
  // the oldest hint among them (unix ms).
  std::int64_t pending_refreshes = 0;
  std::optional<std::int64_t> oldest_pending_refresh_at_ms;
};

// The figures /metrics shows about the mirror's contents.
struct MirrorGauges {
  std::map<std::string, std::int64_t> runs_by_state;
  std::optional<std::int64_t> last_webhook_at;
  std::int64_t outbox_pending = 0;  // commands in state pending or sending
  std::optional<std::int64_t> oldest_pending_at;
  std::int64_t pending_refreshes = 0;  // rows of pending_refreshes
  std::optional<std::int64_t> oldest_pending_refresh_at_ms;
};

// Reads MirrorGauges over one read-only connection kept open, for a
// metrics scrape. Thread-safe (calls are serialised).
class MirrorGaugeReader {
 public:
  static StatusOr<std::unique_ptr<MirrorGaugeReader>> open(const std::string& path);
  // Takes over `db`, a read-only connection (open() makes one).
  explicit MirrorGaugeReader(std::unique_ptr<SQLite::Database> db);
  ~MirrorGaugeReader();
  StatusOr<MirrorGauges> read();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads the report from the database at `path` (read-only). `now` is unix s.
// Unfinished cycles are kRunning or kInterrupted by poller_running().
StatusOr<MirrorReport> read_mirror_report(const std::string& path, std::int64_t now);

}  // namespace runsync
