// The WriteGate, and the Checkpointer using it to make a busy writer's WAL
// start over, against real SQLite files.
#include "storage/checkpointer.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "core/webhook_event.h"
#include "storage/store.h"
#include "storage/write_gate.h"
#include "storage/writer.h"
#include "support/file_size_cap.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::FileSizeCap;
using runsync::testing::TempDir;
using runsync::testing::wait_until;
using namespace std::chrono_literals;

WebhookDelivery delivery(int n) {
  return testing::delivery(testing::completed(n % 50 + 1, 1000 + n, n % 10), 1000,
                           "key-" + std::to_string(n));
}

// A store whose connection never checkpoints by itself, as serve opens
// it beside a Checkpointer; nullptr (and a failure) when it cannot open.
std::unique_ptr<Store> open_checkpointed_elsewhere(const std::string& path) {
  OpenOptions options;
  options.auto_checkpoint = false;
  auto opened = Store::open(path, options);
  EXPECT_TRUE(opened.is_ok()) << opened.message();
  return opened.is_ok() ? std::move(opened).value() : nullptr;
}

// Salt-1 of the WAL header: SQLite adds one each time it starts the WAL over.
std::uint32_t wal_restarts_salt(const std::string& db_path) {
  std::ifstream in(db_path + "-wal", std::ios::binary);
  unsigned char header[32] = {};
  in.read(reinterpret_cast<char*>(header), sizeof header);
  EXPECT_EQ(in.gcount(), 32) << "no WAL header";
  return std::uint32_t{header[16]} << 24 | std::uint32_t{header[17]} << 16 |
         std::uint32_t{header[18]} << 8 | std::uint32_t{header[19]};
}

TEST(WriteGate, AHoldWaitsForTheOpenTransactionAndHoldsTheNextOff) {
  WriteGate gate;
  gate.enter();  // a transaction is open
  std::atomic<bool> held{false};
  std::promise<void> release_hold;
  auto hold = std::async(std::launch::async, [&] {
    return gate.hold_while(1h, [&] {
      held = true;
      release_hold.get_future().wait();
    });
  });
  // The hold waits for the transaction; the next one waits for the hold.
  EXPECT_EQ(hold.wait_for(0s), std::future_status::timeout);
  EXPECT_FALSE(held.load());
  gate.leave();
  ASSERT_TRUE(wait_until([&] { return held.load(); }));
  std::atomic<bool> entered{false};
  auto next = std::async(std::launch::async, [&] {
    gate.enter();
    entered = true;
  });
  EXPECT_EQ(next.wait_for(20ms), std::future_status::timeout);
  EXPECT_FALSE(entered.load());
  release_hold.set_value();
  EXPECT_TRUE(hold.get());  // nothing began during it
  next.get();
  EXPECT_TRUE(entered.load());
  gate.leave();
}

TEST(WriteGate, AHoldLetsTheWriterGoOnOnceItsTimeIsUp) {
  WriteGate gate;
  std::atomic<bool> entered{false};
  std::future<void> writer;
  bool held = gate.hold_while(10ms, [&] {
    // The writer arrives during the hold and, after 10 ms, goes in.
    writer = std::async(std::launch::async, [&] {
      gate.enter();
      entered = true;
    });
    EXPECT_TRUE(wait_until([&] { return entered.load(); }));
  });
  writer.get();
  EXPECT_FALSE(held);
  gate.leave();
  // Without a hold, enter() does not wait.
  gate.enter();
  gate.leave();
}

// Each of the Writer's transactions goes through the gate: a hold waits for
// the batch in progress, and the next batch waits for the hold.
TEST(WriteGate, TheWriterEntersItForEveryTransaction) {
  TempDir dir;
  OpenOptions options;
  auto store = Store::open(dir.file("w.db"), options);
  ASSERT_TRUE(store.is_ok()) << store.message();
  auto gate = std::make_shared<WriteGate>();
  Writer::Options writer_options;
  writer_options.gate = gate;
  Writer writer(std::move(store).value(), writer_options);

  std::promise<void> release_job;
  std::shared_future<void> job_released = release_job.get_future().share();
  std::atomic<bool> in_job{false};
  std::atomic<bool> second_ran{false};
  std::promise<Status> first_done;
  ASSERT_TRUE(writer.submit(
      [&, job_released](Store& s) {
        in_job = true;
        job_released.wait();
        return s.journal().apply(delivery(1)).status();
      },
      [&](const Status& s) { first_done.set_value(s); }));
  ASSERT_TRUE(wait_until([&] { return in_job.load(); }));

  std::atomic<bool> in_hold{false};
  std::promise<Status> second_done;
  auto hold = std::async(std::launch::async, [&] {
    return gate->hold_while(1h, [&] {
      in_hold = true;
      EXPECT_TRUE(writer.submit(
          [&](Store& s) {
            second_ran = true;
            return s.journal().apply(delivery(2)).status();
          },
          [&](const Status& s) { second_done.set_value(s); }));
      // The writer takes the job and waits at the gate.
      EXPECT_TRUE(wait_until([&] { return writer.depth() == 0; }));
      EXPECT_FALSE(second_ran.load());
    });
  });
  EXPECT_EQ(hold.wait_for(20ms), std::future_status::timeout);
  EXPECT_FALSE(in_hold.load());  // the first batch is still open
  release_job.set_value();
  EXPECT_TRUE(first_done.get_future().get().is_ok());
  EXPECT_TRUE(hold.get());
  EXPECT_TRUE(second_done.get_future().get().is_ok());
  EXPECT_TRUE(second_ran.load());
  writer.stop();
}

// A writer that never pauses between transactions: a checkpoint alone never
// catches up with it, so without the held pass the WAL would only grow.
TEST(Checkpointer, HoldsABusyWriterOffSoThatTheWalStartsOver) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  std::unique_ptr<Store> store = open_checkpointed_elsewhere(path);
  ASSERT_NE(store, nullptr);
  auto gate = std::make_shared<WriteGate>();
  Checkpointer::Options checkpoint_options;
  checkpoint_options.interval = 1ms;
  checkpoint_options.gate = gate;
  checkpoint_options.restart_frames = 32;
  checkpoint_options.hold = 1h;  // never let the writer in early here
  auto checkpointer = Checkpointer::start(path, checkpoint_options);
  ASSERT_TRUE(checkpointer.is_ok()) << checkpointer.message();

  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::uint32_t first_salt = 0;
  std::thread writer([&] {
    for (int n = 0; !stop; ++n) {
      gate->enter();
      Status s = store->begin();
      if (s.is_ok()) s = store->journal().apply(delivery(n)).status();
      if (s.is_ok()) s = store->commit();
      gate->leave();
      ASSERT_TRUE(s.is_ok()) << s.message();
      if (n == 0) first_salt = wal_restarts_salt(path);
      ++written;
    }
  });
  const bool restarted =
      wait_until([&] { return checkpointer.value()->held_checkpoints() >= 3; }, 30s);
  stop = true;
  writer.join();
  EXPECT_TRUE(restarted) << checkpointer.value()->held_checkpoints() << " held checkpoints, "
                         << written.load() << " transactions";
  EXPECT_EQ(checkpointer.value()->last_error(), "");
  // The writer started the WAL over after (nearly) every held checkpoint.
  EXPECT_GE(wal_restarts_salt(path) - first_salt, 2u);
  checkpointer.value().reset();
  store.reset();
}

// A burst leaves a large -wal file; once the writer is quiet the
// checkpointer truncates it, and everything written is in the database.
TEST(Checkpointer, TruncatesTheWalOnceABurstIsOver) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  std::unique_ptr<Store> store = open_checkpointed_elsewhere(path);
  ASSERT_NE(store, nullptr);
  auto wal_bytes = [&] {
    std::error_code ec;
    const auto n = std::filesystem::file_size(path + "-wal", ec);
    return ec ? std::uintmax_t{0} : n;
  };
  // The burst: 16 MiB of deliveries in one transaction.
  constexpr int kDeliveries = 4000;
  const std::string padding(4096, 'x');
  ASSERT_TRUE(store->begin().is_ok());
  for (int n = 0; n < kDeliveries; ++n) {
    WebhookDelivery d = delivery(n);
    d.body += padding;
    ASSERT_TRUE(store->journal().apply(d).is_ok());
  }
  ASSERT_TRUE(store->commit().is_ok());
  ASSERT_GT(wal_bytes(), 16u << 20);

  auto gate = std::make_shared<WriteGate>();
  Checkpointer::Options checkpoint_options;
  checkpoint_options.interval = 10ms;
  checkpoint_options.gate = gate;
  auto checkpointer = Checkpointer::start(path, checkpoint_options);
  ASSERT_TRUE(checkpointer.is_ok()) << checkpointer.message();
  Writer::Options writer_options;
  writer_options.gate = gate;
  Writer writer(std::move(store), writer_options);
  const bool truncated = wait_until([&] { return wal_bytes() < (8u << 20); }, 30s);
  EXPECT_TRUE(truncated) << wal_bytes() << " bytes in the WAL";
  EXPECT_EQ(checkpointer.value()->last_error(), "");
  // The WAL takes writes again after it.
  EXPECT_TRUE(writer.run([](Store& s) { return s.journal().apply(delivery(kDeliveries)).status(); })
                  .is_ok());
  writer.stop();
  checkpointer.value().reset();
  SQLite::Database read(path, SQLite::OPEN_READONLY);
  EXPECT_EQ(read.execAndGet("SELECT count(*) FROM webhook_events").getInt64(), kDeliveries + 1);
}

// A checkpoint the disk refuses (here the file-size limit keeps it from
// growing the database file) is reported with SQLite's message, counted,
// and tried again; the first one that succeeds afterwards is reported too.
TEST(Checkpointer, ReportsAFailedCheckpointAndItsRecovery) {
  TempDir dir;
  const std::string path = dir.file("c.db");
  std::unique_ptr<Store> store = open_checkpointed_elsewhere(path);
  ASSERT_NE(store, nullptr);
  // One transaction big enough that its checkpoint must grow the file.
  ASSERT_TRUE(store->begin().is_ok());
  for (int n = 0; n < 3000; ++n) ASSERT_TRUE(store->journal().apply(delivery(n)).is_ok());
  ASSERT_TRUE(store->commit().is_ok());
  const auto db_bytes = std::filesystem::file_size(path);
  const auto wal_bytes = std::filesystem::file_size(path + "-wal");
  ASSERT_GT(wal_bytes, db_bytes + 256 * 1024) << "the WAL should hold more than the file";

  std::mutex mu;
  std::vector<std::pair<std::string, std::uint64_t>> reports;
  Checkpointer::Options checkpoint_options;
  checkpoint_options.interval = 5ms;
  checkpoint_options.on_status = [&](const std::string& error, std::uint64_t in_a_row) {
    std::lock_guard lock(mu);
    reports.emplace_back(error, in_a_row);
  };
  auto count_reports = [&] {
    std::lock_guard lock(mu);
    return reports.size();
  };
  // The WAL (already written) is larger than the cap; the database file
  // may not grow past its size now plus a page.
  FileSizeCap cap(db_bytes + 4096);
  auto checkpointer = Checkpointer::start(path, checkpoint_options);
  ASSERT_TRUE(checkpointer.is_ok()) << checkpointer.message();
  ASSERT_TRUE(wait_until([&] { return checkpointer.value()->failed_checkpoints() >= 2; }, 30s));
  EXPECT_NE(checkpointer.value()->last_error(), "");
  EXPECT_EQ(checkpointer.value()->checkpoints(), 0u);
  {
    std::lock_guard lock(mu);
    ASSERT_GE(reports.size(), 2u);
    // SQLite's message and the system's reason for the refused write.
    EXPECT_NE(reports[0].first.find("disk I/O error"), std::string::npos) << reports[0].first;
    EXPECT_NE(reports[0].first.find(std::strerror(EFBIG)), std::string::npos) << reports[0].first;
    EXPECT_EQ(reports[0].second, 1u);
    EXPECT_EQ(reports[1].second, 2u);
  }

  cap.lift();
  ASSERT_TRUE(wait_until([&] { return checkpointer.value()->checkpoints() >= 1; }, 30s));
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return !reports.empty() &&
               reports.back() == std::make_pair(std::string(), std::uint64_t{0});
      },
      30s));
  EXPECT_EQ(checkpointer.value()->last_error(), "");
  const std::size_t after_recovery = count_reports();
  const auto failed = checkpointer.value()->failed_checkpoints();
  // Everything is in the database file now, and nothing more is reported.
  ASSERT_TRUE(wait_until([&] { return checkpointer.value()->checkpoints() >= 3; }, 30s));
  EXPECT_EQ(count_reports(), after_recovery);
  EXPECT_EQ(checkpointer.value()->failed_checkpoints(), failed);
  EXPECT_GT(std::filesystem::file_size(path), db_bytes + 256 * 1024);
  checkpointer.value().reset();
  store.reset();
}

// checkpoints = "external": while the replicator keeps the WAL below
// from_frames, the checkpointer leaves it alone; once it holds more, it
// checkpoints (and says so once).
TEST(Checkpointer, AsABackstopItWaitsForTheWalToReachItsLimit) {
  TempDir dir;
  const std::string path = dir.file("w.db");
  std::unique_ptr<Store> store = open_checkpointed_elsewhere(path);
  ASSERT_NE(store, nullptr);
  auto frames = store->wal_frames();
  auto write = [&](int first, int count) {
    ASSERT_TRUE(store->begin().is_ok());
    for (int n = first; n < first + count; ++n) {
      ASSERT_TRUE(store->journal().apply(delivery(n)).is_ok());
    }
    ASSERT_TRUE(store->commit().is_ok());
  };
  write(0, 10);
  const int written = frames->load();
  ASSERT_GT(written, 0);

  std::mutex mu;
  std::vector<int> backstops;
  Checkpointer::Options options;
  options.interval = 1ms;
  options.wal_frames = frames;
  options.from_frames = written + 40;
  options.on_backstop = [&](int n) {
    std::lock_guard lock(mu);
    backstops.push_back(n);
  };
  auto started = Checkpointer::start(path, options);
  ASSERT_TRUE(started.is_ok()) << started.message();
  auto checkpointer = std::move(started).value();
  ASSERT_TRUE(wait_until([&] { return checkpointer->skipped_intervals() >= 5; }));
  EXPECT_EQ(checkpointer->checkpoints(), 0u);

  for (int n = 10; frames->load() < written + 40; n += 10) write(n, 10);
  ASSERT_TRUE(wait_until([&] { return checkpointer->checkpoints() >= 3; }));
  checkpointer.reset();
  std::lock_guard lock(mu);
  ASSERT_EQ(backstops.size(), 1u);
  EXPECT_GE(backstops[0], written + 40);
}

}  // namespace
}  // namespace runsync
