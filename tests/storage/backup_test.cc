// `runsync backup` killed midway: the file it was asked for appears only
// complete.
#include "storage/backup.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "storage/store.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;

// The size of the largest file in `dir` other than the database's own.
std::uintmax_t largest_other_file(const std::string& dir) {
  std::uintmax_t largest = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind("mirror.db", 0) == 0) continue;
    largest = std::max(largest, entry.file_size(ec));
  }
  return largest;
}

TEST(Backup, AKilledBackupLeavesNoFileUnderTheNameAndARerunSucceeds) {
  TempDir dir;
  const std::string path = dir.file("mirror.db");
  std::int64_t rows = 0;
  {
    auto store = Store::open(path, OpenOptions{});
    ASSERT_TRUE(store.is_ok()) << store.message();
    store.value().reset();
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    // About 40 MB, so that copying takes long enough to be killed midway.
    db.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
        "INSERT INTO webhook_events (received_at, delivery_key, event_name, body, result) "
        "SELECT 500, 'k' || i, 'run.started', hex(randomblob(4000)), 'applied' FROM n");
    rows = db.execAndGet("SELECT count(*) FROM webhook_events").getInt64();
  }
  const std::string dest = dir.file("copy.db");
  int killed_midway = 0;
  for (int round = 0; round < 5 && killed_midway < 2; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) _exit(backup_database(path, dest).is_ok() ? 0 : 1);
    // Kill it as soon as the copy has begun to be written.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (largest_other_file(dir.path()) < 1024 * 1024 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (WIFSIGNALED(status)) {
      ++killed_midway;
      EXPECT_FALSE(std::filesystem::exists(dest)) << "round " << round;
      EXPECT_FALSE(std::filesystem::exists(dest + "-journal")) << "round " << round;
    }
    std::error_code ec;
    std::filesystem::remove(dest, ec);
    std::filesystem::remove(dest + "-journal", ec);
  }
  ASSERT_GT(killed_midway, 0) << "every backup finished before it could be killed";

  auto info = backup_database(path, dest);
  ASSERT_TRUE(info.is_ok()) << info.message();
  SQLite::Database copy(dest, SQLite::OPEN_READONLY);
  EXPECT_EQ(copy.execAndGet("PRAGMA integrity_check").getString(), "ok");
  EXPECT_EQ(copy.execAndGet("SELECT count(*) FROM webhook_events").getInt64(), rows);
}

}  // namespace
}  // namespace runsync
