// The metrics over the database and the mirror: the writer's commits and
// queue, the sizes of the database and its WAL, gauges over the mirror's
// contents (read from the database once per scrape), and each project's
// last successful poll as poll_cycles remembers it, so that the gauge
// survives a restart.
//
// Thread safety: call once at start, before the metrics are served; the
// collectors it installs run on the scraping thread.
#pragma once

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/project.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "storage/writer.h"

namespace runsync {

// `writer`, `metrics` and `clock` must outlive what this installs. Problems reading
// the database are logged as warnings and leave the gauges out (at start)
// or at their last values (at a scrape).
void watch_mirror(Metrics& metrics, Writer& writer, const std::string& database_path,
                  const std::vector<ProjectConfig>& polled_projects, Logger logger,
                  const Clock& clock);

}  // namespace runsync
