// A SQLite VFS that writes each commit's WAL frames with one system call.
//
// SQLite writes a WAL frame as two pwrite()s, its 24-byte header and then
// its page, and a commit of a batch is dozens of frames, each call paying
// the kernel's per-call work (file lookup, inode lock, page-cache walk) for
// a few bytes. This VFS is the default one ("unix") except for WAL files,
// whose writes it gathers in memory while they are contiguous and hands to
// the file when SQLite syncs it, reads it, asks its size, truncates or
// closes it, or writes elsewhere.
//
// Only for connections with synchronous = FULL or EXTRA: then every commit
// syncs the WAL before it publishes the new frames in the shared index, so
// no other connection can read a frame still held here. With NORMAL a
// commit does not sync, and buffered frames would be visible but unwritten;
// open_database() uses the plain VFS then.
//
// Thread safety: wal_write_vfs_name() and wal_write_vfs_stats() may be
// called from any thread; wal_defer_commit_syncs() only by the thread that
// uses `db`.
#pragma once

#include <cstdint>

struct sqlite3;

namespace runsync {

// Registers the VFS (once, process-wide, not as the default) and returns
// its name for sqlite3_open_v2(). nullptr if SQLite has no default VFS.
const char* wal_write_vfs_name();

// With `defer`, the syncs of `db`'s WAL only hand the frames to the file
// (the first sync after SQLite rewrote the WAL header excepted): a COMMIT
// then publishes a transaction that is not yet durable, and the caller
// makes it durable (fdatasync of the -wal file) before it tells anyone.
// Only around a COMMIT on a connection that never checkpoints by itself
// (wal_autocheckpoint = 0): a checkpoint must sync the WAL before it
// copies frames into the database. Returns false, changing nothing, when
// the connection's WAL is not open on this VFS.
bool wal_defer_commit_syncs(sqlite3* db, bool defer);

// Since the process started, over every WAL on this VFS: syncs passed to
// the file, and syncs left to the caller by wal_defer_commit_syncs.
struct WalWriteVfsStats {
  std::uint64_t syncs = 0;
  std::uint64_t deferred_syncs = 0;
};
WalWriteVfsStats wal_write_vfs_stats();

}  // namespace runsync
