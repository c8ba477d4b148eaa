#include "storage/vfs_shim.h"

#include <sqlite3.h>

namespace runsync {

sqlite3_vfs* shim_root(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

namespace {

// ToRoot<&sqlite3_vfs::xMethod>::call is a VFS method that calls the
// root's xMethod with the root in place of the shim.
template <auto Method>
struct ToRoot;

template <typename R, typename... Args, R (*sqlite3_vfs::*Method)(sqlite3_vfs*, Args...)>
struct ToRoot<Method> {
  static R call(sqlite3_vfs* vfs, Args... args) {
    sqlite3_vfs* root = shim_root(vfs);
    return (root->*Method)(root, args...);
  }
};

template <auto... Methods>
void forward_to_root(sqlite3_vfs& vfs) {
  ((vfs.*Methods = &ToRoot<Methods>::call), ...);
}

}  // namespace

void init_shim_vfs(sqlite3_vfs& vfs, sqlite3_vfs* root, int extra_file_bytes) {
  vfs = sqlite3_vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = extra_file_bytes + root->szOsFile;
  vfs.mxPathname = root->mxPathname;
  vfs.pAppData = root;
  // Every method of a version-2 VFS but xOpen, which the layer sets.
  forward_to_root<&sqlite3_vfs::xDelete, &sqlite3_vfs::xAccess, &sqlite3_vfs::xFullPathname,
                  &sqlite3_vfs::xDlOpen, &sqlite3_vfs::xDlError, &sqlite3_vfs::xDlSym,
                  &sqlite3_vfs::xDlClose, &sqlite3_vfs::xRandomness, &sqlite3_vfs::xSleep,
                  &sqlite3_vfs::xCurrentTime, &sqlite3_vfs::xGetLastError,
                  &sqlite3_vfs::xCurrentTimeInt64>(vfs);
}

}  // namespace runsync
