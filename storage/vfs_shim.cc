#include "storage/vfs_shim.h"

#include <sqlite3.h>

namespace runsync {

sqlite3_vfs* shim_root(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

namespace {

int vfs_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return shim_root(vfs)->xDelete(shim_root(vfs), name, sync_dir);
}
int vfs_access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return shim_root(vfs)->xAccess(shim_root(vfs), name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return shim_root(vfs)->xFullPathname(shim_root(vfs), name, n, out);
}
void* vfs_dl_open(sqlite3_vfs* vfs, const char* name) {
  return shim_root(vfs)->xDlOpen(shim_root(vfs), name);
}
void vfs_dl_error(sqlite3_vfs* vfs, int n, char* out) {
  shim_root(vfs)->xDlError(shim_root(vfs), n, out);
}
void (*vfs_dl_sym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return shim_root(vfs)->xDlSym(shim_root(vfs), handle, symbol);
}
void vfs_dl_close(sqlite3_vfs* vfs, void* handle) {
  shim_root(vfs)->xDlClose(shim_root(vfs), handle);
}
int vfs_randomness(sqlite3_vfs* vfs, int n, char* out) {
  return shim_root(vfs)->xRandomness(shim_root(vfs), n, out);
}
int vfs_sleep(sqlite3_vfs* vfs, int us) { return shim_root(vfs)->xSleep(shim_root(vfs), us); }
int vfs_current_time(sqlite3_vfs* vfs, double* out) {
  return shim_root(vfs)->xCurrentTime(shim_root(vfs), out);
}
int vfs_get_last_error(sqlite3_vfs* vfs, int n, char* out) {
  return shim_root(vfs)->xGetLastError(shim_root(vfs), n, out);
}
int vfs_current_time_int64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return shim_root(vfs)->xCurrentTimeInt64(shim_root(vfs), out);
}

}  // namespace

void init_shim_vfs(sqlite3_vfs& vfs, sqlite3_vfs* root, int extra_file_bytes) {
  vfs = sqlite3_vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = extra_file_bytes + root->szOsFile;
  vfs.mxPathname = root->mxPathname;
  vfs.pAppData = root;
  vfs.xDelete = vfs_delete;
  vfs.xAccess = vfs_access;
  vfs.xFullPathname = vfs_full_pathname;
  vfs.xDlOpen = vfs_dl_open;
  vfs.xDlError = vfs_dl_error;
  vfs.xDlSym = vfs_dl_sym;
  vfs.xDlClose = vfs_dl_close;
  vfs.xRandomness = vfs_randomness;
  vfs.xSleep = vfs_sleep;
  vfs.xCurrentTime = vfs_current_time;
  vfs.xGetLastError = vfs_get_last_error;
  vfs.xCurrentTimeInt64 = vfs_current_time_int64;
}

}  // namespace runsync
