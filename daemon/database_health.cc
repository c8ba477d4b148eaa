#include "daemon/database_health.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <utility>

#include "storage/write_health.h"

namespace runsync {

void watch_database_writes(Writer& writer, const std::string& database_path, Metrics& metrics,
                           Logger logger, const Clock& clock) {
  Gauge& failing = metrics.gauge("runsync_database_writes_failing",
                                 "1 while the latest write transaction failed, else 0");
  Counter& failures =
      metrics.counter("runsync_database_write_failures_total",
                      "Write transactions the database refused (BEGIN, COMMIT or WAL sync failed)");
  std::shared_ptr<WriteHealthFile> file;
  if (auto held = WriteHealthFile::hold(database_path)) {
    file = std::move(held).value();
  } else {
    logger->warn("{}; `runsync status` will not see failed writes (the metrics do)",
                 held.message());
  }
  // The writer copies the observer for each call, so its state is shared.
  auto was_failing = std::make_shared<std::atomic<bool>>(false);
  writer.set_outcome_observer([&failing, &failures, logger, file, was_failing,
                               &clock](const Status& database) {
    const bool now_failing = !database.is_ok();
    if (now_failing) failures.inc();
    failing.set(now_failing ? 1.0 : 0.0);
    std::string unrecorded;
    if (file) {
      auto recorded = file->record(database, clock.unix_seconds());
      if (!recorded) unrecorded = " (" + recorded.message() + ": `runsync status` cannot tell)";
    }
    if (was_failing->exchange(now_failing) == now_failing) return;
    if (now_failing) {
      logger->error(
          "writes to the database fail: {}; webhooks are answered 500, and `runsync "
          "status` and /metrics say so while it lasts{}",
          database.message(), unrecorded);
    } else {
      logger->info("writes to the database succeed again{}", unrecorded);
    }
  });
}

}  // namespace runsync
