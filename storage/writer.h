// The write path: how a job becomes durable.
//
// Group commit. One writer thread owns the Store and takes the queued jobs
// in batches, one transaction per batch, so one COMMIT and one fsync serve
// every job in it. A job's completion runs only after its batch is durable,
// so callers may acknowledge work as soon as they hear back.
//
// The sync thread. With Options::wal_sync, a COMMIT only publishes the
// batch (Store::split_commit_sync); a second thread fsyncs the -wal file
// for every batch committed since its last sync (wal_sync.h) and then runs
// their completions, while the writer already applies the next batch.
//
// The checkpoint hold. In the daemon the writer's connection never
// checkpoints (OpenOptions::auto_checkpoint = false): the Checkpointer
// copies the WAL into the database from its own connection, and when the
// WAL has grown large it holds the writer's next transaction off through
// the WriteGate (Options::gate, write_gate.h) for a bounded time while it
// copies the last frames, so that transaction starts the WAL over instead
// of growing it (checkpointer.h).
//
// Thread safety: submit/try_submit/depth may be called from any thread.
// Jobs run on the writer thread, completions on the writer thread or (with
// Options::wal_sync) on the sync thread; a completion must be quick (e.g.
// post the answer to another executor).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"
#include "storage/store.h"
#include "storage/wal_sync.h"
#include "storage/write_gate.h"

namespace runsync {

class Writer {
 public:
  // Runs inside the batch transaction. A job that returns an error has its
  // writes undone and the batch goes on: the batch is rolled back and run
  // again with a savepoint per job. So a job may run twice; it must set,
  // not accumulate, whatever it reports outside the Store, and touch
  // nothing else.
  using Job = std::function<Status(Store&)>;
  // Called once per job after the batch commits (with the job's status) or
  // fails to commit (with that error).
  using Done = std::function<void(const Status&)>;
  // Observes each committed batch: job count and seconds the commit took.
  using BatchObserver = std::function<void(std::size_t jobs, double commit_seconds)>;
  // Observes whether the database took each batch: ok once it is durable,
  // else the error of its BEGIN, COMMIT or WAL sync (a job's own error is
  // not the database's and is not observed). Called on the writer or the
  // sync thread; must be quick and thread-safe.
  using OutcomeObserver = std::function<void(const Status& database)>;

  struct Options {
    std::size_t queue_capacity = 8192;  // try_submit refuses beyond this
    std::size_t max_batch = 4096;       // jobs per transaction at most
    // After a batch of n > 1 jobs, wait for n jobs to be queued again
    // before the next batch, up to this long and never longer than the last
    // COMMIT took: when a commit waits for a slow flush, the clients just
    // answered come back within the wait and one commit serves them all
    // instead of splitting them into groups that take turns; when commits
    // are cheap, taking turns lets one group's requests be parsed while the
    // other's are written, and waiting would only idle the writer. Never
    // waits after a batch of one, so a lone client is not delayed.
    std::chrono::microseconds gather_wait{500};
    // When set (see Store::split_commit_sync), a batch's COMMIT does not
    // wait for the disk: a second thread syncs the WAL, for every batch
    // committed since its last sync at once, and only then runs their
    // completions, while the writer already applies the next batch. A
    // failed sync fails those jobs and every later one: nothing is
    // acknowledged after the disk refused a write.
    std::shared_ptr<WalSync> wal_sync;
    // When set, each batch's transaction is entered through it, so that
    // the Checkpointer can hold the next one off (see WriteGate).
    std::shared_ptr<WriteGate> gate;
  };

  Writer(std::unique_ptr<Store> store, Options options);
  ~Writer();  // stops (see stop())
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues a job unless the queue holds queue_capacity jobs already;
  // returns false (and drops nothing else) when full or stopped.
  bool try_submit(Job job, Done done);
  // Queues a job, waiting for room. Returns false only when stopped.
  bool submit(Job job, Done done);
  // Runs `job` and waits for its batch to commit. For callers that are not
  // latency-sensitive (poller, CLI). Returns the job's or the commit's status.
  Status run(Job job);

  std::size_t depth() const;
  void set_batch_observer(BatchObserver observer);
  void set_outcome_observer(OutcomeObserver observer);

  // Finishes every queued job, commits, and joins the thread. Jobs submitted
  // after stop() are refused. Idempotent.
  void stop();

 private:
  struct Item {
    Job job;
    Done done;
  };
  // A committed batch waiting for the WAL sync.
  struct Committed {
    std::vector<Done> done;
    std::vector<Status> results;
    std::chrono::steady_clock::time_point commit_started;
  };
  void loop();
  bool wake_writer() const;  // under mu_: has the queue reached wake_at_?
  void sync_loop();
  Status sync_wal();  // options_.wal_sync->sync(), recording a failure
  // Runs the completions of a batch that is durable (or failed) now.
  void finish(Committed& c, const Status& batch);
  void observe_outcome(const Status& database);
  // Runs the batch; returns how long its COMMIT took.
  std::chrono::microseconds run_batch(std::deque<Item>& batch);
  // The steps of run_batch. Fails every job of `batch` with `database`.
  void fail_batch(std::deque<Item>& batch, const Status& database);
  // With wal_sync after a failed sync: fails the batch and returns true.
  bool refused_after_sync_failure(std::deque<Item>& batch);
  // BEGIN, then every job into `results`, all in one transaction; when one
  // fails, again with a savepoint per job. Returns false when the batch is
  // finished already (its only job failed, or BEGIN failed).
  bool run_jobs(std::deque<Item>& batch, std::vector<Status>& results);
  void run_jobs_with_savepoints(std::deque<Item>& batch, std::vector<Status>& results);
  // After the COMMIT of `c` with wal_sync: hands it to the sync thread, or
  // syncs and finishes it here when nothing else waits for the writer.
  void sync_committed(Committed& c);

  std::unique_ptr<Store> store_;
  Options options_;
  mutable std::mutex mu_;
  std::condition_variable has_work_;
  std::condition_variable has_room_;
  std::deque<Item> queue_;
  // The queue length the writer thread is waiting for, 0 while it is busy.
  // Submitters wake it only when the queue reaches it, not once per job
  // only for it to go back to sleep.
  std::size_t wake_at_ = 0;
  bool stopping_ = false;
  BatchObserver observer_;
  OutcomeObserver outcome_observer_;
  // The sync thread's side, under mu_ too.
  std::condition_variable has_committed_;
  std::condition_variable sync_room_;
  std::vector<Committed> committed_;
  Status sync_failure_ = Status::ok();  // sticky: the first failed sync
  bool sync_stopping_ = false;
  bool syncing_ = false;  // the sync thread holds batches not yet durable
  std::thread sync_thread_;  // only with options_.wal_sync
  std::thread thread_;
};

}  // namespace runsync
