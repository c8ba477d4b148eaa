// Makes what SQLite wrote to a database's write-ahead log durable: the
// flush of Writer::Options::flush for a writer connection at
// synchronous = NORMAL, which writes each commit to the WAL without
// syncing it.
//
// Why this is as durable as synchronous = FULL for what it covers: a sync
// of the WAL file after COMMIT returned covers that commit's frames (and
// every earlier one); recovery replays the WAL up to the last valid commit
// frame, and the checkpointer's connection syncs the WAL before it copies
// frames into the database and the database before the WAL is reused.
//
// Thread safety: sync() may be called from one thread at a time.
#pragma once

#include <string>

#include "core/status.h"

namespace runsync {

class WalSync {
 public:
  explicit WalSync(std::string database_path);
  ~WalSync();
  WalSync(const WalSync&) = delete;
  WalSync& operator=(const WalSync&) = delete;

  // fdatasync()s "<database>-wal" through a descriptor of its own, opened on
  // first use and again whenever the file at that path was replaced (the
  // first open also syncs the directory, so a new WAL file's name is
  // durable too). A missing WAL means nothing is waiting: ok.
  Status sync();

 private:
  std::string wal_path_;
  std::string dir_path_;
  int fd_ = -1;
  unsigned long long inode_ = 0;
  unsigned long long device_ = 0;
};

}  // namespace runsync
