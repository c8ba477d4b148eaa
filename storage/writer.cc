#include "storage/writer.h"

#include <chrono>
#include <future>

namespace runsync {

Writer::Writer(std::unique_ptr<Store> store, Options options)
    : store_(std::move(store)), options_(std::move(options)) {
  if (options_.flush) flusher_ = std::thread([this] { flush_loop(); });
  thread_ = std::thread([this] { loop(); });
}

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

void Writer::set_flush_observer(FlushObserver observer) {
  std::lock_guard lock(mu_);
  flush_observer_ = std::move(observer);
}

void Writer::complete(std::vector<Completion> completions) {
  if (!options_.flush) {
    for (auto& c : completions) c.done(c.status);
    return;
  }
  bool inline_flush = false;
  {
    std::scoped_lock lock(mu_, flush_mu_);
    // Nothing else to do and the flusher idle (a lone client): flushing
    // here saves the hand-over to the flusher thread and back.
    inline_flush = queue_.empty() && unflushed_.empty() && !flushing_;
    if (!inline_flush) {
      for (auto& c : completions) unflushed_.push_back(std::move(c));
    }
  }
  if (!inline_flush) {
    flush_wake_.notify_one();
    return;
  }
  const Status flushed = timed_flush();
  for (auto& c : completions) c.done(c.status.is_ok() ? flushed : c.status);
}

Status Writer::timed_flush() {
  const auto t0 = std::chrono::steady_clock::now();
  const Status flushed = options_.flush();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  FlushObserver observer;
  {
    std::lock_guard lock(mu_);
    observer = flush_observer_;
  }
  if (flushed.is_ok() && observer) observer(seconds);
  return flushed;
}

void Writer::flush_loop() {
  std::vector<Completion> covered;
  for (;;) {
    {
      std::unique_lock lock(flush_mu_);
      flush_wake_.wait(lock, [&] { return flush_stopping_ || !unflushed_.empty(); });
      if (unflushed_.empty()) return;  // stopping and drained
      covered.swap(unflushed_);
      flushing_ = true;
    }
    // Everything in `covered` was committed before this call began.
    const Status flushed = timed_flush();
    for (auto& c : covered) c.done(c.status.is_ok() ? flushed : c.status);
    covered.clear();
    std::lock_guard lock(flush_mu_);
    flushing_ = false;
  }
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
    std::lock_guard lock(flush_mu_);
    flush_stopping_ = true;
  }
  flush_wake_.notify_all();
  if (flusher_.joinable()) flusher_.join();
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
  if (!committed.is_ok()) {
    for (auto& item : batch) item.done(committed);
  } else {
    std::vector<Completion> completions;
    completions.reserve(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      completions.push_back({std::move(batch[i].done), std::move(results[i])});
    }
    complete(std::move(completions));
  }
  return std::chrono::duration_cast<std::chrono::microseconds>(took);
}

}  // namespace runsync
