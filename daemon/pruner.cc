#include "daemon/pruner.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <utility>

namespace runsync {

Pruner::Pruner(PrunerOptions options, Writer& writer, Metrics& metrics, Logger logger,
               const Clock& clock)
    : options_(options), writer_(writer), logger_(std::move(logger)), clock_(clock) {
  for (const HistoryTable table : kHistoryTables) {
    pruned_[table] = &metrics.counter("runsync_retention_pruned_rows_total",
                                      "Rows deleted by retention, by table",
                                      {{"table", history_table_name(table)}});
  }
}

namespace {

std::chrono::milliseconds window(const PrunerOptions& options, HistoryTable table) {
  switch (table) {
    case HistoryTable::kWebhookEvents:
      return options.webhook_events;
    case HistoryTable::kPollCycles:
      return options.poll_cycles;
    case HistoryTable::kRunChanges:
      return options.run_changes;
  }
  return std::chrono::milliseconds(0);
}

}  // namespace

PrunerOptions Pruner::options() const {
  std::lock_guard lock(mu_);
  return options_;
}

void Pruner::reconfigure(const PrunerOptions& options) {
  {
    std::lock_guard lock(mu_);
    options_ = options;
    reconfigured_ = true;
  }
  wake_.notify_all();
}

bool Pruner::stopping() const {
  std::lock_guard lock(mu_);
  return stop_;
}

StatusOr<std::map<HistoryTable, std::int64_t>> Pruner::prune_once() {
  std::map<HistoryTable, std::int64_t> deleted;
  const PrunerOptions options = this->options();
  for (const HistoryTable table : kHistoryTables) {
    const auto keep = window(options, table);
    if (keep.count() <= 0) continue;
    const std::int64_t cutoff =
        clock_.unix_seconds() - std::chrono::duration_cast<std::chrono::seconds>(keep).count();
    std::int64_t& total = deleted[table];
    PruneBatch batch;
    do {
      if (stopping()) return deleted;
      const std::int64_t after = batch.last_key;
      // A job may run twice (Writer::Job), so it sets its result.
      auto result = std::make_shared<PruneBatch>();
      Status st = writer_.run([table, cutoff, after, result](Store& store) {
        auto b = prune_batch(store, table, cutoff, after);
        if (!b) return b.status();
        *result = b.value();
        return Status::ok();
      });
      if (!st) return st;
      batch = *result;
      total += batch.deleted;
      pruned_[table]->inc(static_cast<std::uint64_t>(batch.deleted));
    } while (batch.more);
  }
  return deleted;
}

void Pruner::run() {
  while (!stopping()) {
    const auto started = clock_.now();
    auto round = prune_once();
    const double seconds = std::chrono::duration<double>(clock_.now() - started).count();
    if (!round) {
      logger_->warn("retention: {}; retrying in {} s", round.message(),
                    std::chrono::duration_cast<std::chrono::seconds>(options().interval).count());
    } else {
      auto rows = [&](HistoryTable t) {
        auto it = round->find(t);
        return it == round->end() ? std::int64_t{0} : it->second;
      };
      const std::int64_t events = rows(HistoryTable::kWebhookEvents);
      const std::int64_t cycles = rows(HistoryTable::kPollCycles);
      const std::int64_t changes = rows(HistoryTable::kRunChanges);
      if (events + cycles + changes > 0) {
        logger_->info(
            "retention: deleted {} webhook events, {} poll cycles, {} run changes in {:.3f} s",
            events, cycles, changes, seconds);
      }
    }
    const auto ended = clock_.now();
    std::unique_lock lock(mu_);
    // A reconfigure() wakes the wait, which starts again with the new interval.
    for (;;) {
      reconfigured_ = false;
      const auto next = ended + options_.interval;
      wake_.wait_for(lock, clock_.until(next), [this] { return stop_ || reconfigured_; });
      if (stop_ || (!reconfigured_ && clock_.now() >= next)) break;
    }
  }
}

void Pruner::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
}

}  // namespace runsync
