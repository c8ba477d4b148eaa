// The machine loses power while the writer is busy: every delivery that was
// acknowledged must still be there afterwards, and the database must be
// intact.
//
// A SIGKILL test (tests/e2e) cannot show this: after a killed process the
// kernel still writes what the process wrote, synced or not. Here a VFS
// under everything SQLite and runsync write keeps, per file, the image a
// power cut would leave: the writes that an fsync of that file has covered,
// and nothing written after its last one. It is registered as SQLite's
// default VFS before anything opens a database, so runsync's own VFS (which
// gathers WAL writes) runs on top of it, as it runs on "unix" in serve. The
// writer's WAL sync, which runsync does with fdatasync() on its own file
// descriptor, is done here through the same bookkeeping (PowerCutWalSync).
//
// This is its own test program: the VFS must be the default before the
// first database is opened in the process.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/webhook_event.h"
#include "storage/checkpointer.h"
#include "storage/store.h"
#include "storage/vfs_shim.h"
#include "storage/write_gate.h"
#include "storage/writer.h"
#include "support/events.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::testing::TempDir;
using runsync::testing::wait_until;
using namespace std::chrono_literals;

// --- the power-cut VFS -------------------------------------------------------

// One write or truncate, not yet covered by an fsync of its file.
struct PendingOp {
  sqlite3_int64 offset = 0;  // or the new size, for a truncate
  std::string data;
  bool truncate = false;
};

struct FileImage {
  std::string durable;  // the file's content after a power cut now
  std::vector<PendingOp> pending;
};

// Everything the VFS knows, by file path.
struct Disk {
  std::mutex mu;
  std::map<std::string, FileImage> files;
  bool power_cut = false;
  std::uint64_t syncs = 0;
};

Disk& disk() {
  static Disk d;
  return d;
}

void apply(std::string& image, const PendingOp& op) {
  if (op.truncate) {
    image.resize(static_cast<std::size_t>(op.offset));
    return;
  }
  const auto end = static_cast<std::size_t>(op.offset) + op.data.size();
  if (image.size() < end) image.resize(end);
  std::memcpy(image.data() + op.offset, op.data.data(), op.data.size());
}

// An fsync of `path`: what was written before it becomes durable. Fails
// once the power is cut, as a sync on a dead disk would.
bool sync_path(const std::string& path) {
  Disk& d = disk();
  std::lock_guard lock(d.mu);
  if (d.power_cut) return false;
  FileImage& f = d.files[path];
  for (const PendingOp& op : f.pending) apply(f.durable, op);
  f.pending.clear();
  ++d.syncs;
  return true;
}

void record(const std::string& path, PendingOp op) {
  Disk& d = disk();
  std::lock_guard lock(d.mu);
  if (d.power_cut) return;  // lost anyway
  d.files[path].pending.push_back(std::move(op));
}

struct CutFile {
  sqlite3_file base;
  const char* path;  // SQLite keeps the name alive while the file is open; null: temporary
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

CutFile* cut(sqlite3_file* f) { return reinterpret_cast<CutFile*>(f); }

int file_close(sqlite3_file* f) { return cut(f)->real()->pMethods->xClose(cut(f)->real()); }
int file_read(sqlite3_file* f, void* out, int n, sqlite3_int64 off) {
  return cut(f)->real()->pMethods->xRead(cut(f)->real(), out, n, off);
}
int file_write(sqlite3_file* f, const void* in, int n, sqlite3_int64 off) {
  const int rc = cut(f)->real()->pMethods->xWrite(cut(f)->real(), in, n, off);
  if (rc == SQLITE_OK && cut(f)->path != nullptr) {
    record(cut(f)->path, PendingOp{off, std::string(static_cast<const char*>(in), n), false});
  }
  return rc;
}
int file_truncate(sqlite3_file* f, sqlite3_int64 size) {
  const int rc = cut(f)->real()->pMethods->xTruncate(cut(f)->real(), size);
  if (rc == SQLITE_OK && cut(f)->path != nullptr) record(cut(f)->path, PendingOp{size, "", true});
  return rc;
}
int file_sync(sqlite3_file* f, int) {
  // The durable image is the disk here: no need to wait for the real one.
  if (cut(f)->path == nullptr) return SQLITE_OK;
  return sync_path(cut(f)->path) ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}
int file_size(sqlite3_file* f, sqlite3_int64* out) {
  return cut(f)->real()->pMethods->xFileSize(cut(f)->real(), out);
}
int file_lock(sqlite3_file* f, int l) { return cut(f)->real()->pMethods->xLock(cut(f)->real(), l); }
int file_unlock(sqlite3_file* f, int l) {
  return cut(f)->real()->pMethods->xUnlock(cut(f)->real(), l);
}
int file_check_reserved(sqlite3_file* f, int* out) {
  return cut(f)->real()->pMethods->xCheckReservedLock(cut(f)->real(), out);
}
int file_control(sqlite3_file* f, int op, void* arg) {
  return cut(f)->real()->pMethods->xFileControl(cut(f)->real(), op, arg);
}
int file_sector_size(sqlite3_file* f) {
  return cut(f)->real()->pMethods->xSectorSize(cut(f)->real());
}
int file_device(sqlite3_file* f) {
  return cut(f)->real()->pMethods->xDeviceCharacteristics(cut(f)->real());
}
// The -shm file is shared memory, rebuilt from the WAL after a crash: passed
// through, and deleted when the power comes back.
int file_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return cut(f)->real()->pMethods->xShmMap(cut(f)->real(), page, size, extend, out);
}
int file_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return cut(f)->real()->pMethods->xShmLock(cut(f)->real(), offset, n, flags);
}
void file_shm_barrier(sqlite3_file* f) { cut(f)->real()->pMethods->xShmBarrier(cut(f)->real()); }
int file_shm_unmap(sqlite3_file* f, int del) {
  return cut(f)->real()->pMethods->xShmUnmap(cut(f)->real(), del);
}

// Version 2: no memory-mapped reads, so every read goes through xRead.
const sqlite3_io_methods kCutMethods = {
    2,           file_close,   file_read,     file_write,          file_truncate,  file_sync,
    file_size,   file_lock,    file_unlock,   file_check_reserved, file_control,   file_sector_size,
    file_device, file_shm_map, file_shm_lock, file_shm_barrier,    file_shm_unmap, nullptr,
    nullptr,
};

int vfs_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  CutFile* c = cut(f);
  c->base.pMethods = nullptr;
  c->path = name;
  const int rc = shim_root(vfs)->xOpen(shim_root(vfs), name, c->real(), flags, out_flags);
  if (rc == SQLITE_OK) c->base.pMethods = &kCutMethods;
  return rc;
}
// A deleted file stays deleted (SQLite deletes only the rollback journal
// of the first transaction here, which switches the database to WAL).
int vfs_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  const int rc = shim_root(vfs)->xDelete(shim_root(vfs), name, sync_dir);
  if (rc == SQLITE_OK) {
    std::lock_guard lock(disk().mu);
    disk().files.erase(name);
  }
  return rc;
}
// Makes the power-cut VFS SQLite's default, on top of the current default.
bool register_power_cut_vfs() {
  sqlite3_vfs* root = sqlite3_vfs_find(nullptr);
  if (root == nullptr || root->iVersion < 2) return false;
  static sqlite3_vfs vfs{};
  init_shim_vfs(vfs, root, static_cast<int>(sizeof(CutFile)));
  vfs.zName = "runsync-test-power-cut";
  vfs.xOpen = vfs_open;
  vfs.xDelete = vfs_delete;
  return sqlite3_vfs_register(&vfs, /*makeDflt=*/1) == SQLITE_OK;
}

void cut_power() {
  std::lock_guard lock(disk().mu);
  disk().power_cut = true;
}

// After every connection closed: each file written since the last
// restore becomes what the power cut left of it (empty, if it was never
// synced), the -shm files in `dir` go, and the next run starts with a
// working disk.
void restore_power(const std::string& dir) {
  Disk& d = disk();
  std::lock_guard lock(d.mu);
  for (const auto& [path, image] : d.files) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(image.durable.data(), static_cast<std::streamsize>(image.durable.size()));
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().string().ends_with("-shm")) std::filesystem::remove(entry.path());
  }
  d.files.clear();
  d.power_cut = false;
}

// The writer's WAL sync, as runsync does it (fdatasync of the -wal file),
// through the same bookkeeping.
class PowerCutWalSync final : public WalSync {
 public:
  explicit PowerCutWalSync(std::string wal_path) : wal_path_(std::move(wal_path)) {}
  Status sync() override {
    if (sync_path(wal_path_)) return Status::ok();
    return Status::error("syncing the WAL: the power is off");
  }

 private:
  std::string wal_path_;
};

// A writer that acknowledges without syncing: what the test must catch.
class NoWalSync final : public WalSync {
 public:
  Status sync() override { return Status::ok(); }
};

// --- the test ----------------------------------------------------------------

WebhookDelivery delivery(int client, int n) {
  const int run = (client * 7919 + n) % 300 + 1;
  return testing::delivery(
      testing::webhook_body("run.updated", run, 100000 + n,
                            R"(,"name":"run )" + std::to_string(run) + R"(","passed":)" +
                                std::to_string(n % 50) + R"(,"failed":1)"),
      100000 + n, "client" + std::to_string(client) + "-" + std::to_string(n));
}

struct Outcome {
  std::set<std::string> acknowledged;
  std::set<std::string> stored;  // delivery keys in the database after the cut
  std::string integrity;
  std::uint64_t held_checkpoints = 0;
};

// Runs the writer as serve does (group commit, the WAL synced on the sync
// thread, the checkpointer restarting the WAL beside it) under four clients
// that each keep 8 deliveries in flight, cuts the power once `acked_before_cut`
// were acknowledged and the WAL started over at least `restarts` times,
// then opens what is left.
Outcome run_until_power_cut(bool sync_wal, std::size_t acked_before_cut, std::uint64_t restarts,
                            std::chrono::milliseconds checkpoint_interval, unsigned seed) {
  Outcome out;
  TempDir dir;
  const std::string path = dir.file("mirror.db");
  {
    OpenOptions options;
    options.auto_checkpoint = false;
    auto opened = Store::open(path, options);
    EXPECT_TRUE(opened.is_ok()) << opened.message();
    if (!opened.is_ok()) return out;
    std::unique_ptr<Store> store = std::move(opened).value();
    // Puts the store in split mode; its own fdatasync is replaced below.
    auto file_sync = store->split_commit_sync();
    EXPECT_TRUE(file_sync.is_ok()) << file_sync.message();

    auto gate = std::make_shared<WriteGate>();
    Checkpointer::Options checkpoint_options;
    checkpoint_options.interval = checkpoint_interval;
    checkpoint_options.gate = gate;
    checkpoint_options.restart_frames = 64;  // restart the WAL often
    auto checkpointer = Checkpointer::start(path, checkpoint_options);
    EXPECT_TRUE(checkpointer.is_ok()) << checkpointer.message();
    if (!checkpointer.is_ok()) return out;

    Writer::Options writer_options;
    writer_options.gate = gate;
    if (sync_wal) {
      writer_options.wal_sync = std::make_shared<PowerCutWalSync>(path + "-wal");
    } else {
      writer_options.wal_sync = std::make_shared<NoWalSync>();
    }
    Writer writer(std::move(store), writer_options);

    std::mutex mu;
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> acked{0};
    std::atomic<std::size_t> refused{0};  // answered with an error
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        std::atomic<int> in_flight{0};
        for (int n = 0; !stop; ++n) {
          while (in_flight.load() >= 8 && !stop) std::this_thread::yield();
          if (stop) break;
          auto d = std::make_shared<WebhookDelivery>(delivery(c, n));
          ++in_flight;
          const bool queued =
              writer.submit([d](Store& s) { return s.journal().apply(*d).status(); },
                            [&, key = d->delivery_key](const Status& s) {
                              if (s.is_ok()) {
                                std::lock_guard lock(mu);
                                out.acknowledged.insert(key);
                                ++acked;
                              } else {
                                ++refused;
                              }
                              --in_flight;
                            });
          if (!queued) --in_flight;
        }
        while (in_flight.load() > 0) std::this_thread::yield();
      });
    }
    EXPECT_TRUE(wait_until(
        [&] {
          return acked.load() >= acked_before_cut &&
                 checkpointer.value()->held_checkpoints() >= restarts;
        },
        60s))
        << acked.load() << " acknowledged, " << checkpointer.value()->held_checkpoints()
        << " WAL restarts";
    // Somewhere in the middle of a batch, a sync or a checkpoint: after a
    // random number of further acknowledgements.
    std::mt19937 rng(seed);
    const std::size_t cut_at = acked.load() + rng() % 256;
    EXPECT_TRUE(wait_until([&] { return acked.load() >= cut_at; }, 60s));
    cut_power();
    // A writer that syncs runs into the dead disk: its next jobs fail.
    if (sync_wal) {
      EXPECT_TRUE(wait_until([&] { return refused.load() > 0; }, 60s))
          << "nothing failed after the power cut";
    }
    stop = true;
    for (auto& t : clients) t.join();
    writer.stop();
    out.held_checkpoints = checkpointer.value()->held_checkpoints();
    checkpointer.value().reset();
  }

  restore_power(dir.path());
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix"), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    out.integrity += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT delivery_key FROM webhook_events", -1, &st, nullptr),
            SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    out.stored.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

std::vector<std::string> missing(const Outcome& o) {
  std::vector<std::string> lost;
  std::set_difference(o.acknowledged.begin(), o.acknowledged.end(), o.stored.begin(),
                      o.stored.end(), std::back_inserter(lost));
  return lost;
}

TEST(PowerLoss, EveryAcknowledgedDeliverySurvivesAndTheDatabaseIsIntact) {
  // Cut at three different moments, each after the WAL started over a
  // few times (so the cut may also hit a WAL being rewritten from its start).
  for (unsigned seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Outcome o = run_until_power_cut(/*sync_wal=*/true, 2000, 2, 2ms, seed);
    ASSERT_GE(o.acknowledged.size(), 2000u);
    EXPECT_GE(o.held_checkpoints, 2u);
    EXPECT_EQ(o.integrity, "ok");
    const auto lost = missing(o);
    EXPECT_TRUE(lost.empty()) << lost.size() << " of " << o.acknowledged.size()
                              << " acknowledged deliveries lost, e.g. " << lost.front();
  }
}

// The same run with a writer that acknowledges before its WAL is synced
// (and no checkpoint to sync it by the way) loses acknowledged
// deliveries: the simulation can tell.
TEST(PowerLoss, AWriterThatAcknowledgesBeforeSyncingIsCaught) {
  const Outcome o = run_until_power_cut(/*sync_wal=*/false, 2000, 0, 1h, 4);
  ASSERT_GE(o.acknowledged.size(), 2000u);
  EXPECT_EQ(o.integrity, "ok");  // SQLite itself stays consistent; the promise does not
  EXPECT_FALSE(missing(o).empty());
}

}  // namespace
}  // namespace runsync

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!runsync::register_power_cut_vfs()) {
    std::fprintf(stderr, "cannot register the power-cut VFS\n");
    return 1;
  }
  return RUN_ALL_TESTS();
}
