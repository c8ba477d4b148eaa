#include "daemon/testrail/outbox_worker.h"

#include <spdlog/spdlog.h>

#include "core/outbox_command.h"
#include "core/testrail_api.h"
#include "storage/change_watcher.h"

namespace runsync {

const char* outbox_outcome_name(OutboxOutcome outcome) {
  switch (outcome) {
    case OutboxOutcome::kDone:
      return "done";
    case OutboxOutcome::kFailed:
      return "failed";
    case OutboxOutcome::kUnknown:
      return "unknown";
    case OutboxOutcome::kRetry:
      return "retry";
    case OutboxOutcome::kResolved:
      return "resolved";
  }
  return "failed";
}

OutboxWorker::OutboxWorker(std::string database_path, TestRailClient& client, Writer& writer,
                           Metrics& metrics, Logger logger, const Clock& clock, Options options)
    : database_path_(std::move(database_path)),
      client_(client),
      writer_(writer),
      metrics_(metrics),
      logger_(std::move(logger)),
      clock_(clock),
      options_(options) {
  // Every series is there from the start, at 0, for rate() and absent().
  for (const CommandKind command : {CommandKind::kAddRun, CommandKind::kUpdateRun,
                                    CommandKind::kCloseRun, CommandKind::kDeleteRun}) {
    for (const OutboxOutcome outcome : kOutboxOutcomes) {
      metrics_.counter(
          "runsync_outbox_commands_total", "Write-back commands by command and outcome",
          {{"command", command_name(command)}, {"outcome", outbox_outcome_name(outcome)}});
    }
  }
}

void OutboxWorker::count(const char* command, OutboxOutcome outcome) {
  metrics_
      .counter("runsync_outbox_commands_total", "Write-back commands by command and outcome",
               {{"command", command}, {"outcome", outbox_outcome_name(outcome)}})
      .inc();
}

void OutboxWorker::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
}

void OutboxWorker::run() {
  int recovered = 0;
  Status s = writer_.run([&](Store& store) -> Status {
    auto n = store.outbox().recover_sending(clock_.unix_seconds());
    if (!n) return n.status();
    recovered = n.value();
    return Status::ok();
  });
  if (!s.is_ok()) {
    logger_->error("outbox: cannot recover commands left in flight: {}; write-back is off", s.message());
    return;
  }
  if (recovered > 0) {
    logger_->warn("outbox: {} command(s) were being sent when runsync stopped; marked unknown, "
                  "not repeated (check TestRail, then queue again if needed)", recovered);
  }
  auto watcher = ChangeWatcher::open(database_path_);
  if (!watcher) {
    logger_->warn("outbox: cannot watch the database for new commands ({}); checking every tick",
                  watcher.message());
  }
  while (!stop_) {
    const bool changed = !watcher || watcher.value()->changed();
    const auto now = clock_.now();
    const bool retry_due = retry_at_ && now >= *retry_at_;
    const bool backing_off = retry_at_ && now < *retry_at_;
    if (changed) resolve_unknown_add_runs();
    if (!backing_off && (changed || retry_due)) {
      retry_at_.reset();
      while (!stop_ && execute_next() == Step::kContinue) {
      }
    }
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, options_.tick, [&] { return stop_.load(); });
  }
}

void OutboxWorker::resolve_unknown_add_runs() {
  const std::int64_t now = clock_.unix_seconds();
  std::vector<std::pair<std::int64_t, std::int64_t>> resolved;  // command id, run id
  Status s = writer_.run([&](Store& store) -> Status {
    resolved.clear();
    auto unknown = store.outbox().unknown_add_runs();
    if (!unknown) return unknown.status();
    for (const auto& c : unknown.value()) {
      const std::string name = c.body.value("name", "");
      // The server's clock may differ from ours: allow two minutes.
      auto run = store.outbox().find_added_run(c.target, name, c.created_at - 120);
      if (!run) return run.status();
      if (!run.value()) continue;
      const std::string result = nlohmann::json{{"id", *run.value()}}.dump();
      Status u = store.outbox().update(c.id, CommandState::kDone, false, std::nullopt, result, now);
      if (!u.is_ok()) return u;
      resolved.emplace_back(c.id, *run.value());
    }
    return Status::ok();
  });
  if (!s.is_ok()) {
    logger_->warn("outbox: cannot resolve unknown add_run commands: {}; will try again", s.message());
    return;
  }
  for (auto [id, run] : resolved) {
    count("add_run", OutboxOutcome::kResolved);
    logger_->info("outbox #{} add_run: outcome was unknown; run {} with its name appeared, marked done",
                  id, run);
  }
}

StatusOr<std::optional<OutboxCommand>> OutboxWorker::next_allowed() {
  std::optional<OutboxCommand> next;
  std::vector<std::pair<OutboxCommand, std::string>> refused;  // and why
  Status s = writer_.run([&](Store& store) -> Status {
    next.reset();
    refused.clear();
    for (;;) {
      auto c = store.outbox().next_pending(clock_.unix_seconds());
      if (!c) return c.status();
      if (!c.value()) return Status::ok();
      OutboxCommand& command = *c.value();
      std::optional<RunRecord> run;
      if (command.kind != CommandKind::kAddRun && !command.target_not_integer) {
        auto loaded = store.runs().load(command.target);
        if (!loaded) return loaded.status();
        run = std::move(loaded).value();
      }
      Status allowed = check_command(command, {options_.projects, run ? &*run : nullptr});
      if (allowed.is_ok()) {
        next = std::move(command);
        return Status::ok();
      }
      Status marked = store.outbox().update(command.id, CommandState::kFailed, false,
                                            allowed.message(), std::nullopt, clock_.unix_seconds());
      if (!marked.is_ok()) return marked;
      refused.emplace_back(std::move(command), allowed.message());
    }
  });
  if (!s.is_ok()) return s;
  for (const auto& [command, reason] : refused) {
    count(command_name(command.kind), OutboxOutcome::kFailed);
    logger_->warn("outbox #{} {}: refused, not sent: {}", command.id,
                  command.target_not_integer
                      ? std::string(command_name(command.kind)) + "/" + *command.target_not_integer
                      : command_uri(command),
                  reason);
  }
  return next;
}

void OutboxWorker::record(const OutboxCommand& c, CommandState state,
                          const std::optional<std::string>& error,
                          const std::optional<std::string>& result,
                          const std::optional<Observation>& observation) {
  const std::int64_t now = clock_.unix_seconds();
  Status w = writer_.run([&](Store& store) -> Status {
    if (observation) {
      auto applied = store.runs().apply(*observation, now);
      if (!applied) return applied.status();
    }
    return store.outbox().update(c.id, state, false, error, result, now);
  });
  if (!w.is_ok()) {
    logger_->error("outbox #{} {}: cannot record the outcome '{}': {}", c.id, command_uri(c),
                   command_state_name(state), w.message());
  }
}

OutboxWorker::Step OutboxWorker::execute_next() {
  auto next = next_allowed();
  if (!next) {
    logger_->error("outbox: cannot read the next command: {}; will try again", next.message());
    retry_at_ = clock_.now() + options_.transient_retry;
    return Step::kWait;
  }
  if (!next.value()) return Step::kIdle;
  const OutboxCommand& c = *next.value();
  // The command becomes "sending" (durably) only once its request slot is
  // taken and just before its bytes go out: a stop or a crash while it
  // waits for the budget leaves it pending, as it was never sent.
  bool marked_sending = false;
  std::string not_marked;
  auto mark_sending = [&]() -> bool {
    if (marked_sending) return true;
    Status m = writer_.run([&](Store& store) {
      return store.outbox().update(c.id, CommandState::kSending, true, std::nullopt, std::nullopt,
                                   clock_.unix_seconds());
    });
    if (!m.is_ok()) {
      not_marked = m.message();
      return false;
    }
    marked_sending = true;
    return true;
  };
  auto answer = client_.post(command_uri(c), c.body, mark_sending);
  if (answer) return on_answer(c, *answer);
  const ApiError& e = answer.error();
  if (e.kind != ApiErrorKind::kStopped) return on_error(c, e);
  if (!not_marked.empty() && !stop_) {
    logger_->error(
        "outbox #{} {}: not sent, cannot mark it sending: {}; retrying in {} s", c.id,
        command_uri(c), not_marked,
        std::chrono::duration_cast<std::chrono::seconds>(options_.transient_retry).count());
    retry_at_ = clock_.now() + options_.transient_retry;
  }
  // Nothing was sent since it was last marked: it is pending again.
  if (marked_sending) record(c, CommandState::kPending, std::nullopt, std::nullopt, std::nullopt);
  return Step::kWait;
}

OutboxWorker::Step OutboxWorker::on_answer(const OutboxCommand& c, const ApiResponse& answer) {
  auto parsed = strip_legacy_prefix(answer.body).empty()
                    ? StatusOr<nlohmann::json>(nlohmann::json::object())
                    : parse_api_body(answer.body);
  std::optional<Observation> observation;
  std::optional<std::string> note;
  if (!parsed) {
    note = "the API answered " + std::to_string(answer.http_status) +
           " with a body runsync cannot read (" + parsed.message() +
           "); the next poll will bring the run";
  } else {
    auto o = observe_command_result(c, *parsed, answer.observed_at);
    if (o) {
      observation = std::move(o).value();
    } else {
      note = o.message() + "; the next poll will bring the run";
    }
  }
  record(c, CommandState::kDone, note, parsed ? std::optional(parsed->dump()) : std::nullopt,
         observation);
  count(command_name(c.kind), OutboxOutcome::kDone);
  logger_->info("outbox #{} {}: done{}", c.id, command_uri(c),
                observation ? " (run " + std::to_string(observation->run_id) + ")" : "");
  return Step::kContinue;
}

OutboxWorker::Step OutboxWorker::on_error(const OutboxCommand& c, const ApiError& e) {
  const char* name = command_name(c.kind);
  const std::string uri = command_uri(c);
  switch (e.kind) {
    case ApiErrorKind::kRejected:
    case ApiErrorKind::kNotFound:
    case ApiErrorKind::kBadResponse:
      record(c, CommandState::kFailed, e.message, std::nullopt, std::nullopt);
      count(name, OutboxOutcome::kFailed);
      logger_->warn("outbox #{} {}: failed, the API refused it: {}", c.id, uri, e.describe());
      return Step::kContinue;
    case ApiErrorKind::kConfig:
      if (e.http_status == 403) {
        record(c, CommandState::kFailed, e.message, std::nullopt, std::nullopt);
        count(name, OutboxOutcome::kFailed);
        logger_->warn("outbox #{} {}: failed, no permission: {}", c.id, uri, e.describe());
        return Step::kContinue;
      }
      record(c, CommandState::kPending, e.message, std::nullopt, std::nullopt);
      count(name, OutboxOutcome::kRetry);
      logger_->error(
          "outbox #{} {}: {} ({}){}; retrying in {} s", c.id, uri,
          e.http_status == 0 ? "TLS certificate not trusted" : "authentication failed",
          e.describe(), e.http_status == 0 ? "" : "; check testrail.user and the API key",
          std::chrono::duration_cast<std::chrono::seconds>(options_.config_retry).count());
      retry_at_ = clock_.now() + options_.config_retry;
      return Step::kWait;
    case ApiErrorKind::kUnknownOutcome:
      record(c, CommandState::kUnknown, e.message, std::nullopt, std::nullopt);
      count(name, OutboxOutcome::kUnknown);
      logger_->warn("outbox #{} {}: outcome unknown ({}); not repeated{}", c.id, uri, e.describe(),
                    c.kind == CommandKind::kAddRun
                        ? "; resolved when the run appears in a poll"
                        : "; check TestRail and queue it again if needed");
      return Step::kContinue;
    case ApiErrorKind::kTransient:
      record(c, CommandState::kPending, e.message, std::nullopt, std::nullopt);
      count(name, OutboxOutcome::kRetry);
      logger_->warn(
          "outbox #{} {}: not sent ({}); retrying in {} s, later commands wait", c.id, uri,
          e.describe(),
          std::chrono::duration_cast<std::chrono::seconds>(options_.transient_retry).count());
      retry_at_ = clock_.now() + options_.transient_retry;
      return Step::kWait;
    case ApiErrorKind::kStopped:
      break;  // execute_next's
  }
  return Step::kWait;
}

}  // namespace runsync
