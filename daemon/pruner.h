// Retention in the daemon: every `interval`, deletes the rows of the
// history tables that are older than their window (storage/retention.h),
// one batch per write job through the single Writer, so that webhooks keep
// flowing between batches. Logs one info line per round that deleted
// something and counts the rows in runsync_retention_pruned_rows_total.
//
// Thread safety: run() on its own thread; stop() and reconfigure() from any
// thread. prune_once() is for tests and one-shot use, not concurrently with
// run().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

#include "core/clock.h"
#include "core/status.h"
#include "daemon/config.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "storage/retention.h"
#include "storage/writer.h"

namespace runsync {

// The [retention] section as it is: each table's window (zero keeps rows
// for ever) and the interval between rounds.
using PrunerOptions = Config::Retention;

class Pruner {
 public:
  // `writer`, `metrics` and `clock` must outlive the pruner. Registers the
  // counter's series for every table at 0.
  Pruner(PrunerOptions options, Writer& writer, Metrics& metrics, Logger logger,
         const Clock& clock);

  // One round: every table with a window, batch after batch until a batch
  // finds nothing more to delete or stop() is called. Returns the rows
  // deleted per table (tables without a window are absent), or the first
  // error (rows deleted before it stay deleted and counted).
  StatusOr<std::map<HistoryTable, std::int64_t>> prune_once();

  // A round right away, then one every interval, until stop(). A failed
  // round is logged and retried at the next interval.
  void run();
  void stop();  // idempotent; run() returns after the batch in flight

  // Takes new windows and a new interval (SIGHUP): the next round uses the
  // windows, and comes `options.interval` after the last round ended (at
  // once when that is past). A round in progress keeps the old windows.
  void reconfigure(const PrunerOptions& options);
  PrunerOptions options() const;

 private:
  bool stopping() const;

  PrunerOptions options_;  // guarded by mu_
  Writer& writer_;
  Logger logger_;
  const Clock& clock_;
  std::map<HistoryTable, Counter*> pruned_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool reconfigured_ = false;  // guarded by mu_: run() is to recompute its wait
};

}  // namespace runsync
