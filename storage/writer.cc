#include "storage/writer.h"

#include <chrono>
#include <future>

namespace runsync {

Writer::Writer(std::unique_ptr<Store> store, Options options)
    : store_(std::move(store)), options_(options), thread_([this] { loop(); }) {}

Writer::~Writer() { stop(); }

bool Writer::try_submit(Job job, Done done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
    queue_.push_back({std::move(job), std::move(done)});
  }
  has_work_.notify_one();
  return true;
}

bool Writer::submit(Job job, Done done) {
  {
    std::unique_lock lock(mu_);
    has_room_.wait(lock, [&] { return stopping_ || queue_.size() < options_.queue_capacity; });
    if (stopping_) return false;
    queue_.push_back({std::move(job), std::move(done)});
  }
  has_work_.notify_one();
  return true;
}

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

void Writer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  has_work_.notify_all();
  has_room_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Writer::loop() {
  std::deque<Item> batch;
  std::size_t last_batch = 0;
  std::chrono::microseconds last_commit{0};
  for (;;) {
    {
      std::unique_lock lock(mu_);
      has_work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      const auto gather = std::min(options_.gather_wait, last_commit);
      if (last_batch > 1 && queue_.size() < last_batch && gather.count() > 0) {
        has_work_.wait_for(lock, gather,
                           [&] { return stopping_ || queue_.size() >= last_batch; });
      }
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

std::chrono::microseconds Writer::run_batch(std::deque<Item>& batch) {
  std::vector<Status> results(batch.size(), Status::ok());
  Status begun = store_->begin();
  if (!begun.is_ok()) {
    for (auto& item : batch) item.done(begun);
    return {};
  }
  // Every job in one transaction, no savepoints: a savepoint per job costs
  // about a tenth of a webhook's write (pages already dirty in the batch are
  // copied to the statement journal). Jobs rarely fail; when one does, the
  // whole batch is rolled back and run again with a savepoint per job, so
  // only the failing jobs' writes are undone. Jobs may therefore run twice
  // (see Job).
  bool failed = false;
  for (std::size_t i = 0; i < batch.size() && !failed; ++i) {
    results[i] = batch[i].job(*store_);
    failed = !results[i].is_ok();
  }
  if (failed) {
    store_->rollback();
    if (batch.size() == 1) {
      batch[0].done(results[0]);
      return {};
    }
    begun = store_->begin();
    if (!begun.is_ok()) {
      for (auto& item : batch) item.done(begun);
      return {};
    }
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
  const auto t0 = std::chrono::steady_clock::now();
  Status committed = store_->commit();
  const auto took = std::chrono::steady_clock::now() - t0;
  const double seconds = std::chrono::duration<double>(took).count();
  if (!committed.is_ok()) store_->rollback();
  BatchObserver observer;
  {
    std::lock_guard lock(mu_);
    observer = observer_;
  }
  if (committed.is_ok() && observer) observer(batch.size(), seconds);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i].done(committed.is_ok() ? results[i] : committed);
  }
  return std::chrono::duration_cast<std::chrono::microseconds>(took);
}

}  // namespace runsync
