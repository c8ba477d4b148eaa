#include "storage/write_path.h"

#include <utility>

#include "storage/store.h"
#include "storage/write_gate.h"

namespace runsync {

const char* checkpoint_mode_name(CheckpointMode mode) {
  return mode == CheckpointMode::kExternal ? "external" : "runsync";
}

StatusOr<WritePath> open_write_path(const std::string& path, WritePathOptions options) {
  options.open.auto_checkpoint = false;
  auto store = Store::open(path, options.open);
  if (!store) return store.status();
  // The writer's transactions go through the gate so that the checkpointer
  // can make the WAL start over under sustained load.
  auto gate = std::make_shared<WriteGate>(*options.open.clock);
  Checkpointer::Options checkpoint;
  checkpoint.gate = gate;
  checkpoint.on_status = std::move(options.on_checkpoint_status);
  if (options.checkpoints == CheckpointMode::kExternal) {
    // The replicator owns checkpoints; runsync steps in only if the WAL
    // grows past what a working replicator lets it reach.
    checkpoint.wal_frames = store.value()->wal_frames();
    checkpoint.from_frames = checkpoint.restart_frames;
    if (options.on_backstop) {
      const int limit_mib = checkpoint.from_frames / 256;  // 4 KiB pages
      checkpoint.on_backstop = [report = std::move(options.on_backstop), limit_mib](int frames) {
        report(frames / 256, limit_mib);
      };
    }
  }
  WritePath out;
  out.checkpoint_interval = checkpoint.interval;
  auto checkpointer = Checkpointer::start(path, std::move(checkpoint));
  if (!checkpointer) return checkpointer.status();
  Writer::Options writer;
  writer.queue_capacity = options.queue_capacity;
  writer.max_batch = options.max_batch;
  writer.gate = gate;
  // The writer applies the next batch while the disk syncs the last. Not
  // with max_batch = 1, which promises a transaction and a sync per write.
  if (options.open.durability == Durability::kFull && options.max_batch > 1) {
    auto wal_sync = store.value()->split_commit_sync();
    if (wal_sync) {
      writer.wal_sync = std::move(wal_sync).value();
    } else {
      out.unsplit_sync = wal_sync.message();
    }
  }
  out.writer = std::make_unique<Writer>(std::move(store).value(), std::move(writer));
  out.checkpointer = std::move(checkpointer).value();
  return out;
}

}  // namespace runsync
