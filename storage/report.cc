#include "storage/report.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include "storage/database.h"

namespace runsync {

StatusOr<MirrorReport> read_mirror_report(const std::string& path, std::int64_t now) {
  OpenOptions options;
  options.read_only = true;
  auto opened = open_database(path, options);
  if (!opened) return opened.status();
  SQLite::Database& db = *opened.value();
  MirrorReport r;
  try {
    r.schema_version = schema_version(db);
    if (r.schema_version == 0) return Status::error("database " + path + " has no schema yet; run `runsync migrate`");
    SQLite::Statement states(db, "SELECT state, count(*) FROM runs GROUP BY state");
    while (states.executeStep()) r.runs_by_state[states.getColumn(0).getString()] = states.getColumn(1).getInt64();
    SQLite::Statement last(db, "SELECT max(received_at) FROM webhook_events");
    if (last.executeStep() && !last.getColumn(0).isNull()) r.last_webhook_at = last.getColumn(0).getInt64();
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
      if (!polls.getColumn(5).isNull()) s.last_success_at = polls.getColumn(5).getInt64();
      r.polls.push_back(std::move(s));
    }
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
  OpenOptions options;
  options.read_only = true;
  auto opened = open_database(path, options);
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

struct ChangeWatcher::Impl {
  std::unique_ptr<SQLite::Database> db;
  std::optional<std::int64_t> last;
};

ChangeWatcher::ChangeWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChangeWatcher::~ChangeWatcher() = default;

StatusOr<std::unique_ptr<ChangeWatcher>> ChangeWatcher::open(const std::string& path) {
  OpenOptions options;
  options.read_only = true;
  auto opened = open_database(path, options);
  if (!opened) return opened.status();
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(opened).value();
  return std::unique_ptr<ChangeWatcher>(new ChangeWatcher(std::move(impl)));
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
