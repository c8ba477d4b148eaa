// Whether the database takes the daemon's writes, where an operator looks:
// the metrics runsync_database_writes_failing (1 while the latest write
// transaction failed) and runsync_database_write_failures_total, an error
// line when writes start failing and an info line when one succeeds again,
// and the health file `runsync status` reads (storage/write_health.h).
//
// Thread safety: call once, before the writer takes work; what it installs
// runs on the writer's threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/clock.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "storage/writer.h"

namespace runsync {

// Observes every batch of `writer` (Writer::set_outcome_observer). Holds
// "<database_path>.health" as long as the writer keeps the observer; when
// it cannot, logs a warning and keeps the metrics and log lines only.
// `metrics` and `clock` must outlive the writer; `clock` stamps the file.
void watch_database_writes(Writer& writer, const std::string& database_path, Metrics& metrics,
                           Logger logger, const Clock& clock);

}  // namespace runsync
