// A SQLite VFS layered on another (its "root"): everything but opening
// files goes to the root. runsync's WAL-gathering VFS is one; the
// power-loss test's VFS is another.
#pragma once

struct sqlite3_vfs;

namespace runsync {

// Fills `vfs` as a version-2 VFS whose methods forward to `root` (kept in
// pAppData), with the root's mxPathname and szOsFile plus `extra_file_bytes`
// for the layer's own part of each file. The caller then sets zName and
// xOpen (and overrides any method it must) before registering it.
void init_shim_vfs(sqlite3_vfs& vfs, sqlite3_vfs* root, int extra_file_bytes);

// The VFS a shim made by init_shim_vfs forwards to.
sqlite3_vfs* shim_root(sqlite3_vfs* vfs);

}  // namespace runsync
