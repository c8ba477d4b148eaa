// Executes queued write-back commands against the API (SPEC §7), in id
// order, within the request budget it shares with the poller (one
// TestRailClient).
//
// - Before anything is sent, check_command judges the command as the CLI
//   does (a command may also be queued with SQL): one it refuses becomes
//   "failed" with the reason, and no request is made.
// - A command is marked "sending" (durably) once its request slot is taken,
//   just before its request goes out, so after a crash it becomes "unknown"
//   and is never repeated blindly; one still waiting for the request budget
//   stays "pending".
// - Success: "done" with the API's answer, and the returned run (or a
//   tombstone for delete_run) is applied to the mirror in the same
//   transaction, with source "api".
// - 400/403/404: "failed" with the API's error text. 401: left pending and
//   retried slowly (credentials are a configuration problem).
// - 429, 409, 503, timeouts before sending: the client retries; if it gives
//   up the command stays "pending" and is tried again later, before any
//   later command.
// - Outcome unknown (the request may have been applied): "unknown". An
//   unknown add_run becomes "done" when a run of that name, created after
//   the command was queued, appears in the mirror (e.g. by the next poll).
//
// New rows are noticed through PRAGMA data_version, checked every 200 ms:
// no scan of the table unless something was committed.
//
// Thread safety: run() on its own thread; stop() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/testrail/testrail_client.h"
#include "storage/writer.h"

namespace runsync {

// How runsync_outbox_commands_total's outcome label counts an attempt:
// the command ended done, failed or unknown, is tried again later (retry),
// or an unknown add_run was found in the mirror (resolved).
enum class OutboxOutcome { kDone, kFailed, kUnknown, kRetry, kResolved };
inline constexpr OutboxOutcome kOutboxOutcomes[] = {OutboxOutcome::kDone, OutboxOutcome::kFailed,
                                                    OutboxOutcome::kUnknown, OutboxOutcome::kRetry,
                                                    OutboxOutcome::kResolved};
const char* outbox_outcome_name(OutboxOutcome outcome);  // "done", "failed", ...

class OutboxWorker {
 public:
  struct Options {
    std::chrono::milliseconds tick{200};
    std::chrono::milliseconds transient_retry{30'000};
    std::chrono::milliseconds config_retry{300'000};
    // The configured [[project]] ids: an add_run to any other is refused.
    std::vector<std::int64_t> projects;
  };

  // `client`, `writer`, `metrics` and `clock` must outlive the worker.
  OutboxWorker(std::string database_path, TestRailClient& client, Writer& writer, Metrics& metrics,
               Logger logger, const Clock& clock, Options options);

  void run();
  void stop();

 private:
  enum class Step { kIdle, kContinue, kWait };
  Step execute_next();
  // The oldest pending command check_command allows; those it refuses on
  // the way are marked failed (and logged). nullopt when none is pending.
  StatusOr<std::optional<OutboxCommand>> next_allowed();
  // Records how `c` ended, with the run its answer observed, in one
  // transaction; a failure to record is logged.
  void record(const OutboxCommand& c, CommandState state, const std::optional<std::string>& error,
              const std::optional<std::string>& result,
              const std::optional<Observation>& observation);
  Step on_answer(const OutboxCommand& c, const ApiResponse& answer);
  Step on_error(const OutboxCommand& c, const ApiError& e);  // any kind but kStopped
  void resolve_unknown_add_runs();
  void count(const char* command, OutboxOutcome outcome);

  std::string database_path_;
  TestRailClient& client_;
  Writer& writer_;
  Metrics& metrics_;
  Logger logger_;
  const Clock& clock_;
  Options options_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  std::optional<Clock::TimePoint> retry_at_;  // set while backing off
};

}  // namespace runsync
