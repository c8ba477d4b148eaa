// The single writer: group commit, failing jobs, the split WAL sync.
#include "storage/writer.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <vector>

#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;  // TempDir and the storage fixtures

TEST(Writer, CommitsBatchesAndIsolatesAFailingJob) {
  TempDir dir;
  Writer writer(open_store(dir.file("w.db")), Writer::Options{});
  std::vector<std::future<Status>> results;
  for (int i = 1; i <= 200; ++i) {
    auto p = std::make_shared<std::promise<Status>>();
    results.push_back(p->get_future());
    const bool bad = i == 100;
    ASSERT_TRUE(writer.submit(
        [i, bad](Store& s) -> Status {
          auto r = s.journal().apply(delivery(completed(i, 100, i)));
          if (!r.is_ok()) return r.status();
          return bad ? Status::error("job failed on purpose") : Status::ok();
        },
        [p](const Status& s) { p->set_value(s); }));
  }
  for (int i = 0; i < 200; ++i) {
    Status s = results[i].get();
    EXPECT_EQ(s.is_ok(), i != 99) << i << " " << s.message();
  }
  writer.stop();
  auto db = open_database(dir.file("w.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok());
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM webhook_events"), 199);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM runs WHERE run_id = 100"), 0);
}

// A batch runs without savepoints; when a job fails, the batch is rolled
// back and run again with a savepoint per job: the others' writes land
// once, the failing job's not at all.
TEST(Writer, RerunsABatchWithAFailingJobAndKeepsTheOthers) {
  TempDir dir;
  Writer writer(open_store(dir.file("w.db")), Writer::Options{});
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> blocked{false};
  ASSERT_TRUE(writer.submit([&, gate](Store&) { blocked = true; gate.wait(); return Status::ok(); },
                            [](const Status&) {}));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return blocked.load(); }));
  // Queued while the writer is busy: the next batch holds all three.
  std::atomic<int> runs_of_first{0};
  std::vector<std::future<Status>> results;
  for (int i = 1; i <= 3; ++i) {
    auto p = std::make_shared<std::promise<Status>>();
    results.push_back(p->get_future());
    ASSERT_TRUE(writer.submit(
        [i, &runs_of_first](Store& s) -> Status {
          if (i == 1) ++runs_of_first;
          auto r = s.journal().apply(delivery(completed(i, 100, i)));
          if (!r.is_ok()) return r.status();
          if (r.value() != WebhookResult::kApplied) return Status::error("not applied");
          return i == 2 ? Status::error("job failed on purpose") : Status::ok();
        },
        [p](const Status& s) { p->set_value(s); }));
  }
  release.set_value();
  EXPECT_TRUE(results[0].get().is_ok());
  EXPECT_EQ(results[1].get().message(), "job failed on purpose");
  EXPECT_TRUE(results[2].get().is_ok());
  writer.stop();
  EXPECT_EQ(runs_of_first.load(), 2);  // the batch ran again
  auto db = open_database(dir.file("w.db"), OpenOptions{});
  ASSERT_TRUE(db.is_ok());
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM webhook_events"), 2);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM runs WHERE run_id IN (1, 3)"), 2);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM runs WHERE run_id = 2"), 0);
  EXPECT_EQ(count(*db.value(), "SELECT count(*) FROM run_changes"), 2);
}

// A WalSync that blocks until opened, and can fail. durable(): what
// `committed` counted when the last finished sync began.
class GatedWalSync : public WalSync {
 public:
  explicit GatedWalSync(std::function<std::int64_t()> committed = [] { return 0; })
      : committed_(std::move(committed)) {}
  Status sync() override {
    const std::int64_t covered = committed_();
    std::unique_lock lock(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    if (fail_) return Status::error("syncing the WAL: disk on fire");
    durable_ = std::max(durable_, covered);
    return Status::ok();
  }
  std::int64_t durable() {
    std::lock_guard lock(mu_);
    return durable_;
  }
  void open(bool fail = false) {
    std::lock_guard lock(mu_);
    open_ = true;
    fail_ = fail;
    cv_.notify_all();
  }
  int started() {
    std::lock_guard lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  bool fail_ = false;
  int started_ = 0;
  std::function<std::int64_t()> committed_;
  std::int64_t durable_ = 0;
};

// A writer whose Store leaves each commit's sync to `sync`.
std::unique_ptr<Writer> split_writer(const std::string& path, std::shared_ptr<WalSync> sync) {
  OpenOptions options;
  options.auto_checkpoint = false;
  auto store = Store::open(path, options);
  EXPECT_TRUE(store.is_ok()) << store.message();
  auto own = store.value()->split_commit_sync();  // the Store's; `sync` stands in for it
  EXPECT_TRUE(own.is_ok()) << own.message();
  Writer::Options writer_options;
  writer_options.wal_sync = std::move(sync);
  return std::make_unique<Writer>(std::move(store).value(), writer_options);
}

// A lone job: committed (another connection reads it) but answered only
// once the sync returned.
TEST(Writer, WithASplitSyncAnswersOnlyAfterTheSync) {
  TempDir dir;
  auto gate = std::make_shared<GatedWalSync>();
  auto writer = split_writer(dir.file("w.db"), gate);
  std::promise<Status> answered;
  auto answer = answered.get_future();
  ASSERT_TRUE(writer->submit(
      [](Store& s) { return s.journal().apply(delivery(completed(1, 100, 1))).status(); },
      [&](const Status& s) { answered.set_value(s); }));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return gate->started() == 1; }));
  EXPECT_EQ(journaled(dir.file("w.db")), 1);
  EXPECT_EQ(answer.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  gate->open();
  EXPECT_TRUE(answer.get().is_ok());
  writer->stop();
}

// Batches committed while the disk is busy wait for a sync that began
// after their commit, on the sync thread, while the writer goes on.
TEST(Writer, WithASplitSyncCommitsTheNextBatchWhileTheLastSyncs) {
  TempDir dir;
  const std::string path = dir.file("w.db");
  auto gate = std::make_shared<GatedWalSync>([path] { return journaled(path); });
  auto writer = split_writer(path, gate);
  std::promise<void> release;
  std::shared_future<void> held = release.get_future().share();
  std::atomic<bool> blocked{false};
  // Per answer: its status, and how many rows were durable when it came.
  std::vector<std::future<std::pair<Status, std::int64_t>>> answers;
  auto submit = [&](int run, bool hold) {
    auto p = std::make_shared<std::promise<std::pair<Status, std::int64_t>>>();
    answers.push_back(p->get_future());
    return writer->submit(
        [run, hold, held, &blocked](Store& s) {
          if (hold) {
            blocked = true;
            held.wait();
          }
          return s.journal().apply(delivery(completed(run, 100, run))).status();
        },
        [p, gate](const Status& s) { p->set_value({s, gate->durable()}); });
  };
  ASSERT_TRUE(submit(1, true));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return blocked.load(); }));
  for (int run = 2; run <= 11; ++run) ASSERT_TRUE(submit(run, false));
  release.set_value();
  // Both batches commit while the first sync is held.
  ASSERT_TRUE(runsync::testing::wait_until(
      [&] { return gate->started() == 1 && journaled(path) == 11; }));
  for (auto& a : answers) EXPECT_EQ(a.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  gate->open();
  // Run 1 was the first batch, runs 2-11 the second: each answer came after
  // a sync that began once its batch was committed.
  for (std::size_t i = 0; i < answers.size(); ++i) {
    auto [status, durable] = answers[i].get();
    EXPECT_TRUE(status.is_ok()) << status.message();
    EXPECT_GE(durable, i == 0 ? 1 : 11) << "answer " << i;
  }
  writer->stop();
}

// After a failed sync nothing is acknowledged any more, not even work
// that a later sync would cover.
TEST(Writer, WithASplitSyncAFailedSyncFailsEverythingAfterIt) {
  TempDir dir;
  auto gate = std::make_shared<GatedWalSync>();
  gate->open(/*fail=*/true);
  auto writer = split_writer(dir.file("w.db"), gate);
  for (int run = 1; run <= 2; ++run) {
    std::promise<Status> answered;
    auto answer = answered.get_future();
    ASSERT_TRUE(writer->submit(
        [run](Store& s) { return s.journal().apply(delivery(completed(run, 100, run))).status(); },
        [&](const Status& s) { answered.set_value(s); }));
    EXPECT_EQ(answer.get().message(), "syncing the WAL: disk on fire") << run;
  }
  writer->stop();
  EXPECT_EQ(gate->started(), 1);
  EXPECT_EQ(journaled(dir.file("w.db")), 1);  // the second job never ran
}

TEST(Writer, RefusesWhenTheQueueIsFullAndDrainsOnStop) {
  TempDir dir;
  Writer::Options options;
  options.queue_capacity = 2;
  options.max_batch = 1;
  Writer writer(open_store(dir.file("w.db")), options);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> blocked{false};
  std::atomic<int> done{0};
  auto count_done = [&](const Status&) { ++done; };
  ASSERT_TRUE(writer.try_submit([&, gate](Store&) { blocked = true; gate.wait(); return Status::ok(); },
                                count_done));
  ASSERT_TRUE(runsync::testing::wait_until([&] { return blocked.load(); }));
  EXPECT_TRUE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
  EXPECT_TRUE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
  EXPECT_FALSE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
  EXPECT_EQ(writer.depth(), 2u);
  release.set_value();
  writer.stop();
  EXPECT_EQ(done.load(), 3);
  EXPECT_FALSE(writer.try_submit([](Store&) { return Status::ok(); }, count_done));
}

TEST(Writer, AReaderHoldingAReadTransactionDoesNotStopWrites) {
  TempDir dir;
  Writer writer(open_store(dir.file("r.db")), Writer::Options{});
  ASSERT_TRUE(
      writer.run([](Store& s) { return s.journal().apply(delivery(completed(1, 1, 1))).status(); })
          .is_ok());
  SQLite::Database reader(dir.file("r.db"), SQLite::OPEN_READONLY);
  reader.exec("BEGIN");
  EXPECT_EQ(count(reader, "SELECT count(*) FROM webhook_events"), 1);  // read snapshot held
  for (int i = 2; i <= 50; ++i) {
    ASSERT_TRUE(
        writer
            .run([i](Store& s) { return s.journal().apply(delivery(completed(i, 1, 1))).status(); })
            .is_ok());
  }
  EXPECT_EQ(count(reader, "SELECT count(*) FROM webhook_events"), 1);  // still its snapshot
  reader.exec("COMMIT");
  EXPECT_EQ(count(reader, "SELECT count(*) FROM webhook_events"), 50);
}

}  // namespace
}  // namespace runsync
