#include "storage/outbox.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/VariadicBind.h>

#include "storage/database.h"

namespace runsync {

StatusOr<std::int64_t> Outbox::queue(const OutboxCommand& c, std::int64_t now) {
  try {
    SQLite::Statement st(db_,
                         "INSERT INTO outbox (command, target, body, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)");
    SQLite::bind(st, command_name(c.kind), c.target, c.body.dump(), now, now);
    st.exec();
    return static_cast<std::int64_t>(db_.getLastInsertRowid());
  } catch (const std::exception& e) {
    return Status::error(std::string("queueing command: ") + e.what());
  }
}

StatusOr<std::optional<OutboxCommand>> Outbox::next_pending(std::int64_t now) {
  try {
    for (;;) {
      SQLite::Statement st(db_,
                           "SELECT id, command, target, body, created_at FROM outbox "
                           "WHERE state = 'pending' ORDER BY id LIMIT 1");
      if (!st.executeStep()) return std::optional<OutboxCommand>{};
      OutboxCommand c;
      c.id = st.getColumn(0).getInt64();
      const SQLite::Column target = st.getColumn(2);
      if (target.isInteger()) {
        c.target = target.getInt64();
      } else {
        c.target_not_integer = target.isNull() ? "NULL" : target.getString();
      }
      c.created_at = st.getColumn(4).getInt64();
      auto kind = parse_command_name(st.getColumn(1).getString());
      StatusOr<nlohmann::json> body = parse_command_body(st.getColumn(3).getString());
      Status valid = Status::ok();
      if (!kind) {
        valid = Status::error("unknown command '" + st.getColumn(1).getString() + "'");
      } else if (!body) {
        valid = Status::error(std::string(command_name(*kind)) + ": " + body.message());
      } else {
        c.kind = *kind;
        c.body = std::move(*body);
      }
      st.reset();
      if (valid.is_ok()) return std::optional<OutboxCommand>{std::move(c)};
      Status marked =
          update(c.id, CommandState::kFailed, false, valid.message(), std::nullopt, now);
      if (!marked.is_ok()) return marked;
    }
  } catch (const std::exception& e) {
    return Status::error(std::string("reading the outbox: ") + e.what());
  }
}

Status Outbox::update(std::int64_t id, CommandState state, bool count_attempt,
                      const std::optional<std::string>& error,
                      const std::optional<std::string>& result, std::int64_t now) {
  try {
    SQLite::Statement st(db_,
                         "UPDATE outbox SET state = ?, attempts = attempts + ?, last_error = ?, "
                         "result = ?, updated_at = ? WHERE id = ?");
    SQLite::bind(st, std::string(command_state_name(state)), count_attempt ? 1 : 0);
    // Every parameter starts NULL: a null `error` or `result` clears its column.
    if (error) st.bind(3, *error);
    if (result) st.bind(4, *result);
    st.bind(5, now);
    st.bind(6, id);
    st.exec();
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::error(std::string("updating the outbox: ") + e.what());
  }
}

StatusOr<int> Outbox::recover_sending(std::int64_t now) {
  try {
    SQLite::Statement st(db_,
                         "UPDATE outbox SET state = 'unknown', updated_at = ?, last_error = "
                         "'runsync stopped while the request was in flight; outcome unknown' "
                         "WHERE state = 'sending'");
    st.bind(1, now);
    return st.exec();
  } catch (const std::exception& e) {
    return Status::error(std::string("recovering the outbox: ") + e.what());
  }
}

StatusOr<std::vector<OutboxCommand>> Outbox::unknown_add_runs() {
  try {
    SQLite::Statement st(db_,
                         "SELECT id, target, body, created_at FROM outbox "
                         "WHERE state = 'unknown' AND command = 'add_run' ORDER BY id");
    std::vector<OutboxCommand> out;
    while (st.executeStep()) {
      OutboxCommand c;
      c.id = st.getColumn(0).getInt64();
      c.kind = CommandKind::kAddRun;
      c.target = st.getColumn(1).getInt64();
      StatusOr<nlohmann::json> body = parse_command_body(st.getColumn(2).getString());
      c.created_at = st.getColumn(3).getInt64();
      if (body && body->is_object()) {
        c.body = std::move(*body);
        out.push_back(std::move(c));
      }
    }
    return out;
  } catch (const std::exception& e) {
    return Status::error(std::string("reading the outbox: ") + e.what());
  }
}

StatusOr<std::optional<std::int64_t>> Outbox::find_added_run(std::int64_t project_id,
                                                             const std::string& name,
                                                             std::int64_t since) {
  try {
    SQLite::Statement st(
        db_,
        "SELECT run_id FROM runs WHERE project_id = ? AND name = ? AND created_on >= ? "
        "AND run_id NOT IN (SELECT json_extract(result, '$.id') FROM outbox "
        "WHERE command = 'add_run' AND state = 'done' AND result IS NOT NULL) "
        "ORDER BY created_on, run_id LIMIT 1");
    SQLite::bind(st, project_id, name, since);
    if (!st.executeStep()) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{st.getColumn(0).getInt64()};
  } catch (const std::exception& e) {
    return Status::error(std::string("looking for an added run: ") + e.what());
  }
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
    c.state = parse_command_state(st.getColumn(2).getString());
    c.attempts = st.getColumn(3).getInt64();
    if (!st.getColumn(4).isNull()) c.last_error = st.getColumn(4).getString();
    if (!st.getColumn(5).isNull()) c.result = st.getColumn(5).getString();
    return std::optional<CommandStatus>{std::move(c)};
  } catch (const std::exception& e) {
    return Status::error("reading outbox row " + std::to_string(id) + ": " + e.what());
  }
}

}  // namespace runsync
