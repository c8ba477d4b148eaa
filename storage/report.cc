#include "storage/report.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "storage/database.h"
#include "storage/poller_mark.h"

namespace runsync {
namespace {

// A new T that keeps a read-only connection to `path` open.
template <typename T>
StatusOr<std::unique_ptr<T>> open_reader(const std::string& path) {
  auto db = open_read_only(path);
  if (!db) return db.status();
  return std::make_unique<T>(std::move(db).value());
}

// Runs by state, the newest delivery, the commands not done. Throws
// SQLite::Exception.
MirrorGauges read_figures(SQLite::Database& db) {
  MirrorGauges g;
  SQLite::Statement states(db, "SELECT state, count(*) FROM runs GROUP BY state");
  while (states.executeStep()) {
    g.runs_by_state[states.getColumn(0).getString()] = states.getColumn(1).getInt64();
  }
  SQLite::Statement last(db, "SELECT max(received_at) FROM webhook_events");
  if (last.executeStep() && !last.getColumn(0).isNull()) {
    g.last_webhook_at = last.getColumn(0).getInt64();
  }
  if (db.tableExists("pending_refreshes")) {
    SQLite::Statement hints(db, "SELECT count(*), min(first_hint_at_ms) FROM pending_refreshes");
    if (hints.executeStep()) {
      g.pending_refreshes = hints.getColumn(0).getInt64();
      if (!hints.getColumn(1).isNull()) g.oldest_pending_refresh_at_ms = hints.getColumn(1).getInt64();
    }
  }
  if (!db.tableExists("outbox")) return g;
  SQLite::Statement pending(db,
                            "SELECT count(*), min(created_at) FROM outbox "
                            "WHERE state = 'pending' OR state = 'sending'");
  if (pending.executeStep()) {
    g.outbox_pending = pending.getColumn(0).getInt64();
    if (!pending.getColumn(1).isNull()) g.oldest_pending_at = pending.getColumn(1).getInt64();
  }
  return g;
}

}  // namespace

const char* cycle_state_name(CycleState state) {
  switch (state) {
    case CycleState::kOk:
      return "ok";
    case CycleState::kFailed:
      return "failed";
    case CycleState::kRunning:
      return "running";
    case CycleState::kInterrupted:
      return "interrupted";
  }
  return "?";
}

StatusOr<MirrorReport> read_mirror_report(const std::string& path, std::int64_t now) {
  const bool polling_now = poller_running(path);
  auto opened = open_read_only(path);
  if (!opened) return opened.status();
  SQLite::Database& db = *opened.value();
  MirrorReport r;
  try {
    r.schema_version = schema_version(db);
    if (r.schema_version == 0) return Status::error("database " + path + " has no schema yet; run `runsync migrate`");
    SQLite::Transaction snapshot(db);  // one consistent view for all figures
    MirrorGauges figures = read_figures(db);
    r.runs_by_state = std::move(figures.runs_by_state);
    r.last_webhook_at = figures.last_webhook_at;
    r.oldest_pending_at = figures.oldest_pending_at;
    r.pending_refreshes = figures.pending_refreshes;
    r.oldest_pending_refresh_at_ms = figures.oldest_pending_refresh_at_ms;
    SQLite::Statement hour(db,
                           "SELECT result, count(*) FROM webhook_events WHERE received_at >= ? "
                           "GROUP BY result");
    hour.bind(1, static_cast<std::int64_t>(now - 3600));
    while (hour.executeStep()) r.webhook_results_last_hour[hour.getColumn(0).getString()] = hour.getColumn(1).getInt64();
    SQLite::Statement polls(db,
                            "SELECT p.project_id, p.kind, p.started_at, p.finished_at, p.error, "
                            "(SELECT max(finished_at) FROM poll_cycles s WHERE s.project_id = "
                            "p.project_id AND s.error IS NULL AND s.finished_at IS NOT NULL) "
                            "FROM poll_cycles p WHERE p.id = (SELECT max(id) FROM poll_cycles q "
                            "WHERE q.project_id = p.project_id) ORDER BY p.project_id");
    while (polls.executeStep()) {
      PollSummary s;
      s.project_id = polls.getColumn(0).getInt64();
      s.kind = polls.getColumn(1).getString();
      s.started_at = polls.getColumn(2).getInt64();
      if (!polls.getColumn(3).isNull()) s.finished_at = polls.getColumn(3).getInt64();
      if (!polls.getColumn(4).isNull()) s.error = polls.getColumn(4).getString();
      if (s.error) {
        s.state = CycleState::kFailed;
      } else if (!s.finished_at) {
        s.state = polling_now ? CycleState::kRunning : CycleState::kInterrupted;
      }
      if (!polls.getColumn(5).isNull()) s.last_success_at = polls.getColumn(5).getInt64();
      r.polls.push_back(std::move(s));
    }
    SQLite::Statement oldest(db, "SELECT min(received_at) FROM webhook_events");
    if (oldest.executeStep() && !oldest.getColumn(0).isNull()) {
      r.oldest_webhook_at = oldest.getColumn(0).getInt64();
    }
    r.free_bytes = db.execAndGet("PRAGMA freelist_count").getInt64() *
                   db.execAndGet("PRAGMA page_size").getInt64();
    std::error_code size_error;
    const auto size = std::filesystem::file_size(path, size_error);
    if (!size_error) r.file_bytes = static_cast<std::int64_t>(size);
    const auto wal_size = std::filesystem::file_size(path + "-wal", size_error);
    if (!size_error) r.wal_bytes = static_cast<std::int64_t>(wal_size);
    if (db.tableExists("outbox")) {
      SQLite::Statement outbox(db, "SELECT state, count(*) FROM outbox GROUP BY state");
      while (outbox.executeStep()) r.outbox_by_state[outbox.getColumn(0).getString()] = outbox.getColumn(1).getInt64();
    }
  } catch (const std::exception& e) {
    return Status::error("reading " + path + ": " + e.what());
  }
  return r;
}

struct MirrorGaugeReader::Impl {
  explicit Impl(std::unique_ptr<SQLite::Database> d) : db(std::move(d)) {}
  std::unique_ptr<SQLite::Database> db;
  std::mutex mu;
};

MirrorGaugeReader::MirrorGaugeReader(std::unique_ptr<SQLite::Database> db)
    : impl_(new Impl{std::move(db)}) {}
MirrorGaugeReader::~MirrorGaugeReader() = default;

StatusOr<std::unique_ptr<MirrorGaugeReader>> MirrorGaugeReader::open(const std::string& path) {
  return open_reader<MirrorGaugeReader>(path);
}

StatusOr<MirrorGauges> MirrorGaugeReader::read() {
  std::lock_guard lock(impl_->mu);
  try {
    SQLite::Transaction snapshot(*impl_->db);  // one consistent view for all figures
    return read_figures(*impl_->db);
  } catch (const std::exception& e) {
    return Status::error(std::string("reading the mirror's figures: ") + e.what());
  }
}

}  // namespace runsync
