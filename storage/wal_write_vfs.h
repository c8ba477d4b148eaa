// A SQLite VFS that writes each commit's WAL frames with one system call.
//
// SQLite writes a WAL frame as two pwrite()s, its 24-byte header and then
// its page, and a commit of a batch is dozens of frames: on this machine
// the kernel's per-call work (file lookup, inode lock, page-cache walk for
// a 24-byte write) was a tenth of the writer's time. This VFS is the
// default one ("unix") except for WAL files, whose writes it gathers in
// memory while they are contiguous and hands to the file when SQLite syncs
// it, reads it, asks its size, truncates or closes it, or writes elsewhere.
//
// Only for connections with synchronous = FULL or EXTRA: then every commit
// syncs the WAL before it publishes the new frames in the shared index, so
// no other connection can read a frame still held here. With NORMAL a
// commit does not sync, and buffered frames would be visible but unwritten;
// open_database() uses the plain VFS then.
#pragma once

namespace runsync {

// Registers the VFS (once, process-wide, not as the default) and returns
// its name for sqlite3_open_v2(). nullptr if SQLite has no default VFS.
const char* wal_write_vfs_name();

}  // namespace runsync
