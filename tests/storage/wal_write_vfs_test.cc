// The VFS that gathers WAL writes (storage/wal_write_vfs.h), against real
// files: what a commit leaves must be exactly what another connection on
// the plain VFS reads, through spills, rewrites, rollbacks and restarts.
#include "storage/wal_write_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <map>
#include <string>

#include "storage/database.h"
#include "storage/store.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;

std::string vfs_of(SQLite::Database& db) {
  sqlite3_vfs* vfs = nullptr;
  EXPECT_EQ(sqlite3_file_control(db.getHandle(), "main", SQLITE_FCNTL_VFS_POINTER, &vfs),
            SQLITE_OK);
  return vfs ? vfs->zName : "";
}

std::unique_ptr<SQLite::Database> open(const std::string& path, OpenOptions options) {
  auto db = open_database(path, options);
  EXPECT_TRUE(db.is_ok()) << db.message();
  return std::move(db).value();
}

TEST(WalWriteVfs, OnlyConnectionsThatSyncEveryCommitUseIt) {
  TempDir dir;
  ASSERT_NE(wal_write_vfs_name(), nullptr);
  auto full = open(dir.file("v.db"), OpenOptions{});
  EXPECT_EQ(vfs_of(*full), wal_write_vfs_name());
  OpenOptions normal;
  normal.durability = Durability::kNormal;
  EXPECT_EQ(vfs_of(*open(dir.file("v.db"), normal)), "unix");
  OpenOptions read_only;
  read_only.read_only = true;
  EXPECT_EQ(vfs_of(*open(dir.file("v.db"), read_only)), "unix");
}

// Rows of webhook_events as key -> body, read by `db`.
std::map<std::string, std::string> journal(SQLite::Database& db) {
  std::map<std::string, std::string> rows;
  SQLite::Statement q(db, "SELECT delivery_key, body FROM webhook_events");
  while (q.executeStep()) rows[q.getColumn(0).getString()] = q.getColumn(1).getString();
  return rows;
}

TEST(WalWriteVfs, EveryCommitIsWhatAnotherConnectionReads) {
  TempDir dir;
  auto writer = open(dir.file("w.db"), OpenOptions{});
  ASSERT_EQ(vfs_of(*writer), wal_write_vfs_name());
  // A page cache of a few pages: transactions spill frames to the WAL and
  // then write the same pages again in place; 200 pages a checkpoint: the
  // WAL restarts from its start every few rounds.
  writer->exec("PRAGMA cache_size = 8");
  writer->exec("PRAGMA wal_autocheckpoint = 200");
  OpenOptions plain;
  plain.read_only = true;
  auto reader = open(dir.file("w.db"), plain);
  ASSERT_EQ(vfs_of(*reader), "unix");

  auto insert = std::make_unique<SQLite::Statement>(*writer,
                           "INSERT INTO webhook_events (received_at, delivery_key, event_name, "
                           "body, result) VALUES (1, ?, 'run.updated', ?, 'applied')");
  auto rewrite = std::make_unique<SQLite::Statement>(
      *writer, "UPDATE webhook_events SET body = ? WHERE delivery_key = ?");
  auto body = [](int round, int i, char tag) {
    // 1.5 KB, different on every row and every rewrite.
    return std::string(1500, static_cast<char>('a' + (round * 7 + i) % 26)) + tag +
           std::to_string(round) + "/" + std::to_string(i);
  };
  auto put = [&](const std::string& key, const std::string& text) {
    insert->reset();
    insert->bind(1, key);
    insert->bind(2, text);
    insert->exec();
  };
  std::map<std::string, std::string> committed;
  for (int round = 0; round < 24; ++round) {
    std::map<std::string, std::string> pending = committed;
    writer->exec("BEGIN IMMEDIATE");
    for (int i = 0; i < 120; ++i) {
      const std::string key = std::to_string(round) + "-" + std::to_string(i);
      put(key, body(round, i, 'i'));
      pending[key] = body(round, i, 'i');
    }
    for (int i = 0; i < 120; i += 3) {  // pages spilled above, written again
      const std::string key = std::to_string(round) + "-" + std::to_string(i);
      rewrite->reset();
      rewrite->bind(1, body(round, i, 'u'));
      rewrite->bind(2, key);
      rewrite->exec();
      pending[key] = body(round, i, 'u');
    }
    writer->exec("SAVEPOINT s");
    for (int i = 0; i < 40; ++i) {
      put("undone-" + std::to_string(round) + "-" + std::to_string(i), body(round, i, 's'));
    }
    writer->exec("ROLLBACK TO s");
    writer->exec("RELEASE s");
    if (round % 4 == 3) {
      writer->exec("ROLLBACK");
    } else {
      writer->exec("COMMIT");
      committed = std::move(pending);
    }
    ASSERT_EQ(journal(*reader), committed) << "after round " << round;
  }
  EXPECT_EQ(committed.size(), 18u * 120u);
  EXPECT_EQ(reader->execAndGet("PRAGMA integrity_check").getString(), "ok");
  insert.reset();
  rewrite.reset();
  writer.reset();
  EXPECT_EQ(journal(*open(dir.file("w.db"), OpenOptions{})), committed);
}

// Split commits (Store::split_commit_sync): a COMMIT leaves its sync to the
// caller, except the sync of a WAL header SQLite just rewrote, which must
// reach the disk before the frames after it.
TEST(WalWriteVfs, ASplitCommitDefersItsSyncButNotTheHeaders) {
  TempDir dir;
  OpenOptions options;
  options.auto_checkpoint = false;
  auto store = Store::open(dir.file("s.db"), options);
  ASSERT_TRUE(store.is_ok()) << store.message();
  auto wal_sync = store.value()->split_commit_sync();
  ASSERT_TRUE(wal_sync.is_ok()) << wal_sync.message();
  Store& s = *store.value();
  auto commit_one = [&](int i) {
    ASSERT_TRUE(s.begin().is_ok());
    s.db().exec("INSERT INTO webhook_events (received_at, delivery_key, event_name, body, result) "
                "VALUES (1, 'k" + std::to_string(i) + "', 'run.updated', '{}', 'applied')");
    ASSERT_TRUE(s.commit().is_ok());
  };
  commit_one(1);
  WalWriteVfsStats before = wal_write_vfs_stats();
  commit_one(2);
  WalWriteVfsStats after = wal_write_vfs_stats();
  EXPECT_EQ(after.syncs, before.syncs);
  EXPECT_EQ(after.deferred_syncs, before.deferred_syncs + 1);

  // Empty the WAL: the next commit writes a new header at its start.
  {
    auto other = open(dir.file("s.db"), OpenOptions{});
    other->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  before = wal_write_vfs_stats();
  commit_one(3);
  after = wal_write_vfs_stats();
  EXPECT_EQ(after.syncs, before.syncs + 1);  // the header's
  EXPECT_EQ(after.deferred_syncs, before.deferred_syncs + 1);

  before = after;
  commit_one(4);
  after = wal_write_vfs_stats();
  EXPECT_EQ(after.syncs, before.syncs);
  EXPECT_EQ(after.deferred_syncs, before.deferred_syncs + 1);
  EXPECT_TRUE(wal_sync.value()->sync().is_ok());

  OpenOptions plain;
  plain.read_only = true;
  EXPECT_EQ(open(dir.file("s.db"), plain)->execAndGet("SELECT count(*) FROM webhook_events").getInt(), 4);
}

}  // namespace
}  // namespace runsync
