#include "storage/writer.h"

#include <chrono>
#include <future>

namespace runsync {

namespace {
// Batches committed but not yet synced, at most: beyond this the writer
// waits for the disk rather than queue more answers behind it.
constexpr std::size_t kMaxUnsynced = 8;

// The transaction, from BEGIN to COMMIT or rollback, inside the gate.
class InsideGate {
 public:
  explicit InsideGate(WriteGate* gate) : gate_(gate) {
    if (gate_) gate_->enter();
  }
  ~InsideGate() { leave(); }
  InsideGate(const InsideGate&) = delete;
  InsideGate& operator=(const InsideGate&) = delete;
  void leave() {
    if (gate_) gate_->leave();
    gate_ = nullptr;
  }

 private:
  WriteGate* gate_;
};

}  // namespace

Writer::Writer(std::unique_ptr<Store> store, Options options)
    : store_(std::move(store)),
      options_(std::move(options)),
      sync_thread_(options_.wal_sync ? std::thread([this] { sync_loop(); }) : std::thread()),
      thread_([this] { loop(); }) {}

Writer::~Writer() { stop(); }

bool Writer::try_submit(Job job, Done done) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
    queue_.push_back({std::move(job), std::move(done)});
    wake = wake_writer();
  }
  if (wake) has_work_.notify_one();
  return true;
}

bool Writer::submit(Job job, Done done) {
  bool wake = false;
  {
    std::unique_lock lock(mu_);
    has_room_.wait(lock, [&] { return stopping_ || queue_.size() < options_.queue_capacity; });
    if (stopping_) return false;
    queue_.push_back({std::move(job), std::move(done)});
    wake = wake_writer();
  }
  if (wake) has_work_.notify_one();
  return true;
}

bool Writer::wake_writer() const { return wake_at_ != 0 && queue_.size() >= wake_at_; }

Status Writer::run(Job job) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  if (!submit(std::move(job), [promise](const Status& s) { promise->set_value(s); })) {
    return Status::error("the writer is stopping");
  }
  return future.get();
}

std::size_t Writer::depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void Writer::set_batch_observer(BatchObserver observer) {
  std::lock_guard lock(mu_);
  observer_ = std::move(observer);
}

void Writer::set_outcome_observer(OutcomeObserver observer) {
  std::lock_guard lock(mu_);
  outcome_observer_ = std::move(observer);
}

void Writer::observe_outcome(const Status& database) {
  OutcomeObserver observer;
  {
    std::lock_guard lock(mu_);
    observer = outcome_observer_;
  }
  if (observer) observer(database);
}

void Writer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  has_work_.notify_all();
  has_room_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mu_);
    sync_stopping_ = true;
  }
  has_committed_.notify_all();
  if (sync_thread_.joinable()) sync_thread_.join();
}

void Writer::sync_loop() {
  for (;;) {
    std::vector<Committed> work;
    Status synced = Status::ok();
    {
      std::unique_lock lock(mu_);
      syncing_ = false;
      has_committed_.wait(lock, [&] { return sync_stopping_ || !committed_.empty(); });
      if (committed_.empty()) return;  // stopping and drained
      work.swap(committed_);
      synced = sync_failure_;
      syncing_ = true;
    }
    sync_room_.notify_all();
    // One sync makes every batch committed before it durable.
    if (synced.is_ok()) synced = sync_wal();
    for (Committed& c : work) finish(c, synced);
  }
}

Status Writer::sync_wal() {
  Status s = options_.wal_sync->sync();
  if (!s.is_ok()) {
    // Sticky: after a failed sync nothing is acknowledged any more. The
    // kernel may have dropped the pages it could not write, and a later
    // sync would not say so.
    std::lock_guard lock(mu_);
    if (sync_failure_.is_ok()) sync_failure_ = s;
  }
  return s;
}

void Writer::finish(Committed& c, const Status& batch) {
  observe_outcome(batch);
  BatchObserver observer;
  {
    std::lock_guard lock(mu_);
    observer = observer_;
  }
  if (batch.is_ok() && observer) {
    observer(c.done.size(),
             std::chrono::duration<double>(store_->clock().now() - c.commit_started).count());
  }
  for (std::size_t i = 0; i < c.done.size(); ++i) {
    c.done[i](batch.is_ok() ? c.results[i] : batch);
  }
}

void Writer::loop() {
  std::deque<Item> batch;
  std::size_t last_batch = 0;
  std::chrono::microseconds last_commit{0};
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_at_ = 1;
      has_work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      const auto gather = std::min(options_.gather_wait, last_commit);
      if (last_batch > 1 && queue_.size() < last_batch && gather.count() > 0) {
        wake_at_ = last_batch;
        has_work_.wait_for(lock, gather,
                           [&] { return stopping_ || queue_.size() >= last_batch; });
      }
      wake_at_ = 0;
      if (queue_.empty()) return;  // stopping and drained
      const std::size_t n = std::min(queue_.size(), options_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    has_room_.notify_all();
    last_batch = batch.size();
    last_commit = run_batch(batch);
    batch.clear();
  }
}

void Writer::fail_batch(std::deque<Item>& batch, const Status& database) {
  observe_outcome(database);
  for (auto& item : batch) item.done(database);
}

bool Writer::refused_after_sync_failure(std::deque<Item>& batch) {
  if (!options_.wal_sync) return false;
  Status failed_before = Status::ok();
  {
    std::lock_guard lock(mu_);
    failed_before = sync_failure_;
  }
  if (failed_before.is_ok()) return false;
  fail_batch(batch, failed_before);
  return true;
}

bool Writer::run_jobs(std::deque<Item>& batch, std::vector<Status>& results) {
  if (Status begun = store_->begin(); !begun.is_ok()) {
    fail_batch(batch, begun);
    return false;
  }
  // Every job in one transaction, no savepoints: a savepoint per job copies
  // the pages already dirty in the batch to the statement journal. Jobs
  // rarely fail; when one does, the whole batch is rolled back and run again
  // with a savepoint per job, so only the failing jobs' writes are undone.
  // Jobs may therefore run twice (see Job).
  bool failed = false;
  for (std::size_t i = 0; i < batch.size() && !failed; ++i) {
    results[i] = batch[i].job(*store_);
    failed = !results[i].is_ok();
  }
  if (!failed) return true;
  store_->rollback();
  if (batch.size() == 1) {
    batch[0].done(results[0]);
    return false;
  }
  if (Status begun = store_->begin(); !begun.is_ok()) {
    fail_batch(batch, begun);
    return false;
  }
  run_jobs_with_savepoints(batch, results);
  return true;
}

void Writer::run_jobs_with_savepoints(std::deque<Item>& batch, std::vector<Status>& results) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Status s = store_->savepoint();
    if (s.is_ok()) {
      s = batch[i].job(*store_);
      if (s.is_ok()) {
        s = store_->release();
      } else {
        store_->rollback_to_savepoint();
      }
    }
    results[i] = std::move(s);
  }
}

void Writer::sync_committed(Committed& c) {
  Status synced = Status::ok();
  bool handed_over = false;
  {
    std::unique_lock lock(mu_);
    // Nothing else to do and nothing else waiting for the disk: sync here
    // and spare a lone client the hand-over to the sync thread.
    handed_over = !(queue_.empty() && committed_.empty() && !syncing_);
    if (handed_over) {
      sync_room_.wait(lock, [&] { return committed_.size() < kMaxUnsynced; });
      committed_.push_back(std::move(c));
    }
    synced = sync_failure_;
  }
  if (handed_over) {
    has_committed_.notify_one();
    return;
  }
  if (synced.is_ok()) synced = sync_wal();
  finish(c, synced);
}

std::chrono::microseconds Writer::run_batch(std::deque<Item>& batch) {
  if (refused_after_sync_failure(batch)) return {};
  std::vector<Status> results(batch.size(), Status::ok());
  InsideGate inside(options_.gate.get());
  if (!run_jobs(batch, results)) return {};
  const auto t0 = store_->clock().now();
  Status committed = store_->commit();
  const auto took =
      std::chrono::duration_cast<std::chrono::microseconds>(store_->clock().now() - t0);
  if (!committed.is_ok()) store_->rollback();
  inside.leave();
  Committed c;
  c.done.reserve(batch.size());
  for (auto& item : batch) c.done.push_back(std::move(item.done));
  c.results = std::move(results);
  c.commit_started = t0;
  if (committed.is_ok() && options_.wal_sync) {
    sync_committed(c);
    return took;
  }
  finish(c, committed);
  return took;
}

}  // namespace runsync
