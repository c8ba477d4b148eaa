#include "storage/wal_write_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "storage/vfs_shim.h"

namespace runsync {
namespace {

// Above this many buffered bytes a write goes out at once: room for the
// frames of a commit of a poll page or of a webhook batch.
constexpr std::size_t kMaxPending = 1 << 20;

// The most one call hands to the unix VFS: it writes at most 128 KiB - 1
// per call (seekAndWriteFd masks the length with 0x1ffff).
constexpr std::size_t kMaxWrite = 31 * 4096;

// Writes not yet handed to the file: `data` belongs at file offset `offset`.
struct Pending {
  std::vector<char> data;
  sqlite3_int64 offset = 0;
};

// The sqlite3_file of a WAL: ours first, the real (unix) file after it in
// the same allocation, which SQLite sized by szOsFile.
struct WalFile {
  sqlite3_file base;
  sqlite3_file* real;
  Pending* pending;
  // Set by wal_defer_commit_syncs around a COMMIT: its sync only hands the
  // frames to the file; the owner makes them durable before acknowledging.
  bool defer_sync;
  // The WAL header was written (SQLite restarted the log) and not synced
  // since. That sync is never deferred: SQLite needs the new header on disk
  // before any frame that follows it (https://sqlite.org/src/info/ff5be73dee).
  bool header_unsynced;
};
constexpr int kWalFileSize = (sizeof(WalFile) + 7) & ~7;

WalFile* wal(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return wal(f)->real; }

// Hands what is pending to the file. On failure the pending bytes are
// dropped: SQLite treats the failed call as a failed write of those frames
// and writes them again, at the same places, in its next transaction.
int flush(sqlite3_file* f) {
  Pending& p = *wal(f)->pending;
  if (p.data.empty()) return SQLITE_OK;
  sqlite3_file* r = real(f);
  int rc = SQLITE_OK;
  for (std::size_t done = 0; done < p.data.size() && rc == SQLITE_OK; done += kMaxWrite) {
    const std::size_t n = std::min(kMaxWrite, p.data.size() - done);
    rc = r->pMethods->xWrite(r, p.data.data() + done, static_cast<int>(n),
                             p.offset + static_cast<sqlite3_int64>(done));
  }
  p.data.clear();
  return rc;
}

int wal_close(sqlite3_file* f) {
  const int flushed = flush(f);
  sqlite3_file* r = real(f);
  const int rc = r->pMethods->xClose(r);
  delete wal(f)->pending;
  wal(f)->pending = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int wal_read(sqlite3_file* f, void* out, int n, sqlite3_int64 offset) {
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  sqlite3_file* r = real(f);
  return r->pMethods->xRead(r, out, n, offset);
}

int wal_write(sqlite3_file* f, const void* in, int n, sqlite3_int64 offset) {
  if (offset == 0) wal(f)->header_unsynced = true;
  Pending& p = *wal(f)->pending;
  const auto* bytes = static_cast<const char*>(in);
  const auto size = static_cast<sqlite3_int64>(p.data.size());
  if (!p.data.empty() && offset == p.offset + size &&
      p.data.size() + static_cast<std::size_t>(n) <= kMaxPending) {
    p.data.insert(p.data.end(), bytes, bytes + n);  // the next frame: the usual case
    return SQLITE_OK;
  }
  if (!p.data.empty() && offset >= p.offset && offset + n <= p.offset + size) {
    // A frame of this transaction written again (SQLite rewrites a page it
    // spilled earlier in place): patch the pending copy.
    std::memcpy(p.data.data() + (offset - p.offset), bytes, static_cast<std::size_t>(n));
    return SQLITE_OK;
  }
  // Anywhere else: what is pending goes first, keeping the order of writes.
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  if (static_cast<std::size_t>(n) > kMaxWrite) {
    sqlite3_file* r = real(f);
    return r->pMethods->xWrite(r, in, n, offset);
  }
  p.offset = offset;
  p.data.assign(bytes, bytes + n);
  return SQLITE_OK;
}

int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  sqlite3_file* r = real(f);
  return r->pMethods->xTruncate(r, size);
}

std::atomic<std::uint64_t> synced_count{0};
std::atomic<std::uint64_t> deferred_count{0};

int wal_sync(sqlite3_file* f, int flags) {
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  WalFile* w = wal(f);
  if (w->defer_sync && !w->header_unsynced) {
    deferred_count.fetch_add(1, std::memory_order_relaxed);
    return SQLITE_OK;
  }
  sqlite3_file* r = real(f);
  const int rc = r->pMethods->xSync(r, flags);
  if (rc == SQLITE_OK) w->header_unsynced = false;
  synced_count.fetch_add(1, std::memory_order_relaxed);
  return rc;
}

int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  sqlite3_file* r = real(f);
  return r->pMethods->xFileSize(r, size);
}

int wal_lock(sqlite3_file* f, int level) {
  sqlite3_file* r = real(f);
  return r->pMethods->xLock(r, level);
}

int wal_unlock(sqlite3_file* f, int level) {
  sqlite3_file* r = real(f);
  return r->pMethods->xUnlock(r, level);
}

int wal_check_reserved_lock(sqlite3_file* f, int* out) {
  sqlite3_file* r = real(f);
  return r->pMethods->xCheckReservedLock(r, out);
}

int wal_file_control(sqlite3_file* f, int op, void* arg) {
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  sqlite3_file* r = real(f);
  return r->pMethods->xFileControl(r, op, arg);
}

int wal_sector_size(sqlite3_file* f) {
  sqlite3_file* r = real(f);
  return r->pMethods->xSectorSize(r);
}

int wal_device_characteristics(sqlite3_file* f) {
  sqlite3_file* r = real(f);
  return r->pMethods->xDeviceCharacteristics(r);
}

// Version 1: SQLite maps shared memory and memory-maps pages only through
// the main database file, never through a WAL.
const sqlite3_io_methods kWalMethods = {
    1,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

int vfs_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags,
             int* out_flags) {
  sqlite3_vfs* r = shim_root(vfs);
  // Every other file is the root VFS's own, in the same (larger) space.
  if ((flags & SQLITE_OPEN_WAL) == 0) return r->xOpen(r, name, file, flags, out_flags);
  WalFile* w = wal(file);
  w->base.pMethods = nullptr;
  w->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kWalFileSize);
  w->defer_sync = false;
  w->header_unsynced = false;
  w->pending = new (std::nothrow) Pending;
  if (w->pending == nullptr) return SQLITE_NOMEM;
  const int rc = r->xOpen(r, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    delete w->pending;
    w->pending = nullptr;
    return rc;
  }
  w->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

sqlite3_vfs* make_vfs() {
  sqlite3_vfs* r = sqlite3_vfs_find(nullptr);
  // Version 2 is all SQLite asks of a VFS it does not test with system-call
  // overrides; the unix VFS has been version 3 for a decade.
  if (r == nullptr || r->iVersion < 2) return nullptr;
  static sqlite3_vfs vfs{};
  init_shim_vfs(vfs, r, kWalFileSize);
  vfs.zName = "runsync-wal-write";
  vfs.xOpen = vfs_open;
  if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
  return &vfs;
}

}  // namespace

const char* wal_write_vfs_name() {
  static sqlite3_vfs* vfs = make_vfs();
  return vfs == nullptr ? nullptr : vfs->zName;
}

bool wal_defer_commit_syncs(sqlite3* db, bool defer) {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods != &kWalMethods) {
    return false;
  }
  wal(file)->defer_sync = defer;
  return true;
}

WalWriteVfsStats wal_write_vfs_stats() {
  return {synced_count.load(std::memory_order_relaxed),
          deferred_count.load(std::memory_order_relaxed)};
}

}  // namespace runsync
