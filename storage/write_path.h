// How the daemon writes: one Store behind the single Writer, and the
// Checkpointer beside it. Here, and not in the process, the durability
// machinery is chosen from what the caller asks for: the write gate that
// lets the checkpointer start the WAL over, the split of a commit from its
// sync, and who owns checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "storage/checkpointer.h"
#include "storage/database.h"
#include "storage/writer.h"

namespace runsync {

// Who checkpoints the WAL (storage.checkpoints).
enum class CheckpointMode {
  kRunsync,   // runsync's own checkpointer
  kExternal,  // a replicator such as Litestream; runsync steps in only past restart_frames
};
const char* checkpoint_mode_name(CheckpointMode mode);  // "runsync", "external"

struct WritePathOptions {
  OpenOptions open;  // its auto_checkpoint is turned off: the Checkpointer does it
  std::size_t queue_capacity = 8192;
  std::size_t max_batch = 4096;
  CheckpointMode checkpoints = CheckpointMode::kRunsync;
  // See Checkpointer::Options::on_status.
  std::function<void(const std::string& error, std::uint64_t failed_in_a_row)> on_checkpoint_status;
  // Under kExternal, when runsync starts checkpointing a WAL of `mib` MiB
  // itself, and the size it brings it back under.
  std::function<void(int mib, int limit_mib)> on_backstop;
};

struct WritePath {
  std::unique_ptr<Writer> writer;
  std::unique_ptr<Checkpointer> checkpointer;  // declared after: stops first
  // Why a batch's commit waits for its own sync although durability is full
  // and batches are allowed (the split is not available); nullopt otherwise.
  std::optional<std::string> unsplit_sync;
  std::chrono::milliseconds checkpoint_interval{0};
};

// Opens (creating and migrating) the database at `path` and starts the
// writer and the checkpointer. Errors name what failed; nothing is left
// running on error.
StatusOr<WritePath> open_write_path(const std::string& path, WritePathOptions options);

}  // namespace runsync
