// The `outbox` table: write-back commands (SPEC §7) and their states
// (pending, sending, done, failed, unknown). The OutboxWorker decides when a
// command moves; this stores it.
//
// Ownership: made by Store for its connection; does not own it.
// Thread safety: none; the Store's one user (the writer thread).
// Errors: SQLite exceptions never escape; each call returns a Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/outbox_command.h"
#include "core/status.h"

namespace SQLite {
class Database;
}

namespace runsync {

class Outbox {
 public:
  explicit Outbox(SQLite::Database& db) : db_(db) {}
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Queues a validated command; returns its id.
  StatusOr<std::int64_t> queue(const OutboxCommand& command, std::int64_t now);
  // The oldest pending command, or nullopt. A row whose command or body
  // cannot be understood is marked failed on the way and skipped; the rest
  // is for check_command to judge (a target that is not an integer comes
  // back in target_not_integer).
  StatusOr<std::optional<OutboxCommand>> next_pending(std::int64_t now);
  // Moves a command to `state` ("sending", "pending", "done", "failed",
  // "unknown"); `count_attempt` adds one to attempts. A null `error` or
  // `result` clears the column.
  Status update(std::int64_t id, CommandState state, bool count_attempt,
                const std::optional<std::string>& error, const std::optional<std::string>& result,
                std::int64_t now);
  // Commands left "sending" by a daemon that stopped mid-request become
  // "unknown". Returns how many.
  StatusOr<int> recover_sending(std::int64_t now);
  // add_run commands whose outcome is unknown.
  StatusOr<std::vector<OutboxCommand>> unknown_add_runs();
  // A run of `project_id` named `name`, created at or after `since`, that no
  // done add_run command already claims; the earliest such run, or nullopt.
  StatusOr<std::optional<std::int64_t>> find_added_run(std::int64_t project_id,
                                                       const std::string& name,
                                                       std::int64_t since);

 private:
  SQLite::Database& db_;
};

// One outbox row as the CLI shows it.
struct CommandStatus {
  std::string command;
  std::int64_t target = 0;
  // nullopt for a state runsync never writes (a row some program edited).
  std::optional<CommandState> state;
  std::int64_t attempts = 0;
  std::optional<std::string> last_error;
  std::optional<std::string> result;
};

// Reads outbox row `id` (read-only); nullopt when there is no such row.
StatusOr<std::optional<CommandStatus>> read_command(const std::string& path, std::int64_t id);

}  // namespace runsync
