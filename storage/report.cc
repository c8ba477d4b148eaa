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

namespace runsync {
namespace {

std::string lock_path(const std::string& database_path) { return database_path + ".lock"; }

StatusOr<std::unique_ptr<SQLite::Database>> open_read_only(const std::string& path) {
  OpenOptions options;
  options.read_only = true;
  return open_database(path, options);
}

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

std::string iso_utc(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  char buffer[32];
  const std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return n == 0 ? std::to_string(unix_seconds) : std::string(buffer, n);
}

StatusOr<std::unique_ptr<PollerMark>> PollerMark::hold(const std::string& database_path) {
  const std::string path = lock_path(database_path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("cannot create " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_SH) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::error("cannot lock " + path + ": " + std::strerror(err));
  }
  return std::unique_ptr<PollerMark>(new PollerMark(fd));
}

PollerMark::~PollerMark() { ::close(fd_); }

bool poller_running(const std::string& database_path) {
  const int fd = ::open(lock_path(database_path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // also drops the lock when it was free and we took it
  return held;
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

StatusOr<std::optional<CommandStatus>> read_command(const std::string& path, std::int64_t id) {
  auto opened = open_read_only(path);
  if (!opened) return opened.status();
  try {
    SQLite::Statement st(*opened.value(),
                         "SELECT command, target, state, attempts, last_error, result FROM outbox "
                         "WHERE id = ?");
    st.bind(1, id);
    if (!st.executeStep()) return std::optional<CommandStatus>{};
    CommandStatus c;
    c.command = st.getColumn(0).getString();
    c.target = st.getColumn(1).getInt64();
    c.state = st.getColumn(2).getString();
    c.attempts = st.getColumn(3).getInt64();
    if (!st.getColumn(4).isNull()) c.last_error = st.getColumn(4).getString();
    if (!st.getColumn(5).isNull()) c.result = st.getColumn(5).getString();
    return std::optional<CommandStatus>{std::move(c)};
  } catch (const std::exception& e) {
    return Status::error("reading outbox row " + std::to_string(id) + ": " + e.what());
  }
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

struct ChangeWatcher::Impl {
  std::unique_ptr<SQLite::Database> db;
  std::optional<std::int64_t> last;
};

ChangeWatcher::ChangeWatcher(std::unique_ptr<SQLite::Database> db)
    : impl_(new Impl{std::move(db), std::nullopt}) {}
ChangeWatcher::~ChangeWatcher() = default;

StatusOr<std::unique_ptr<ChangeWatcher>> ChangeWatcher::open(const std::string& path) {
  return open_reader<ChangeWatcher>(path);
}

bool ChangeWatcher::changed() {
  try {
    const std::int64_t v = impl_->db->execAndGet("PRAGMA data_version").getInt64();
    const bool changed = !impl_->last || *impl_->last != v;
    impl_->last = v;
    return changed;
  } catch (const std::exception&) {
    return true;  // cannot tell: let the caller look
  }
}

}  // namespace runsync
