// The health file `runsync status` reads, fed by the Writer's outcome
// observer while the disk refuses the WAL's writes: the writer's connection
// writes its WAL through the gathering VFS (wal_write_vfs.h), and a cap on
// the size of files this process writes makes that VFS's write fail.
#include "storage/write_health.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <vector>

#include "core/webhook_event.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "support/file_size_cap.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::FileSizeCap;
using runsync::testing::TempDir;

WebhookDelivery delivery(int n) {
  return testing::delivery(
      testing::webhook_body("run.started", n + 1, 1000 + n,
                            R"(,"description":")" + std::string(500, 'd') + '"'),
      1000, "key-" + std::to_string(n));
}

Writer::Job deliveries(int first, int count) {
  return [first, count](Store& s) {
    for (int n = first; n < first + count; ++n) {
      if (auto r = s.journal().apply(delivery(n)); !r) return r.status();
    }
    return Status::ok();
  };
}

TEST(WriteHealth, StatusSeesAWriteTheDiskRefusedUntilOneSucceeds) {
  TempDir dir;
  const std::string path = dir.file("mirror.db");
  OpenOptions options;  // synchronous = full: the WAL goes through the gathering VFS
  options.auto_checkpoint = false;
  auto store = Store::open(path, options);
  ASSERT_TRUE(store.is_ok()) << store.message();
  Writer writer(std::move(store).value(), Writer::Options{});
  auto held = WriteHealthFile::hold(path);
  ASSERT_TRUE(held.is_ok()) << held.message();
  std::unique_ptr<WriteHealthFile> file = std::move(held).value();
  std::int64_t now = 5000;
  std::mutex mu;
  std::vector<bool> changes;  // what record() said of each outcome
  writer.set_outcome_observer([&](const Status& database) {
    auto changed = file->record(database, now);
    ASSERT_TRUE(changed.is_ok()) << changed.message();
    std::lock_guard lock(mu);
    changes.push_back(changed.value());
  });

  ASSERT_TRUE(writer.run(deliveries(0, 5)).is_ok());
  EXPECT_FALSE(read_write_failure(path).has_value());

  // The WAL may not grow past its size now plus two pages.
  const auto wal_bytes = std::filesystem::file_size(path + "-wal");
  FileSizeCap cap(wal_bytes + 8192);
  const Status refused = writer.run(deliveries(100, 50));
  ASSERT_FALSE(refused.is_ok());
  auto failure = read_write_failure(path);
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->since, 5000);
  EXPECT_NE(failure->error.find("disk I/O error"), std::string::npos) << failure->error;
  EXPECT_EQ(failure->error, refused.message());
  now = 6000;
  ASSERT_FALSE(writer.run(deliveries(200, 50)).is_ok());
  failure = read_write_failure(path);
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->since, 5000);  // the first failure in a row

  cap.lift();
  ASSERT_TRUE(writer.run(deliveries(300, 50)).is_ok());
  EXPECT_FALSE(read_write_failure(path).has_value());
  writer.stop();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(changes, (std::vector<bool>{false, true, false, true}));
  }

  // Only a holder's word counts: once it let go, nothing is current.
  ASSERT_TRUE(file->record(Status::error("COMMIT: disk I/O error"), 7000).is_ok());
  ASSERT_TRUE(read_write_failure(path).has_value());
  file.reset();
  EXPECT_FALSE(read_write_failure(path).has_value());
}

TEST(WriteHealth, ALongErrorIsCutAndLinesNeverMix) {
  TempDir dir;
  const std::string path = dir.file("mirror.db");
  auto file = WriteHealthFile::hold(path);
  ASSERT_TRUE(file.is_ok()) << file.message();
  const std::string long_error(10000, 'e');
  ASSERT_TRUE(file.value()->record(Status::error("first\nline " + long_error), 1).is_ok());
  auto failure = read_write_failure(path);
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error.size(), WriteHealthFile::kMaxErrorBytes);
  EXPECT_EQ(failure->error.substr(0, 11), "first line ");
  // A shorter error replaces it whole.
  ASSERT_TRUE(file.value()->record(Status::error("short"), 2).is_ok());
  failure = read_write_failure(path);
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->error, "short");
  EXPECT_EQ(failure->since, 1);
  EXPECT_EQ(std::filesystem::file_size(path + ".health"), 4096u);
}

}  // namespace
}  // namespace runsync
