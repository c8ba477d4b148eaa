#include "storage/change_watcher.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include "storage/database.h"

namespace runsync {

struct ChangeWatcher::Impl {
  std::unique_ptr<SQLite::Database> db;
  std::optional<std::int64_t> last;
};

ChangeWatcher::ChangeWatcher(std::unique_ptr<SQLite::Database> db)
    : impl_(new Impl{std::move(db), std::nullopt}) {}
ChangeWatcher::~ChangeWatcher() = default;

StatusOr<std::unique_ptr<ChangeWatcher>> ChangeWatcher::open(const std::string& path) {
  auto db = open_read_only(path);
  if (!db) return db.status();
  return std::make_unique<ChangeWatcher>(std::move(db).value());
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
