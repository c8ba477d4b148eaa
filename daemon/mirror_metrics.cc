#include "daemon/mirror_metrics.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <memory>

#include "storage/report.h"

namespace runsync {
namespace {

double file_size(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0.0 : static_cast<double>(n);
}

void watch_writer(Metrics& metrics, Writer& writer) {
  Histogram* commit_latency =
      &metrics.histogram("runsync_db_commit_seconds", "Time to commit one batch of writes");
  Counter* batches = &metrics.counter("runsync_db_commits_total", "Write transactions committed");
  Counter* batched_jobs =
      &metrics.counter("runsync_db_committed_jobs_total", "Writes committed, over all batches");
  writer.set_batch_observer([=](std::size_t jobs, double seconds) {
    commit_latency->observe(seconds);
    batches->inc();
    batched_jobs->inc(jobs);
  });
  metrics.gauge_callback("runsync_ingest_queue_depth", "Writes waiting for the writer", {},
                         [&writer] { return static_cast<double>(writer.depth()); });
}

void seed_last_polls(Metrics& metrics, const MirrorReport& report,
                     const std::vector<ProjectConfig>& projects) {
  for (const ProjectConfig& p : projects) {
    for (const PollSummary& s : report.polls) {
      if (s.project_id != p.id || !s.last_success_at) continue;
      metrics
          .gauge("runsync_last_successful_poll_timestamp_seconds",
                 "Unix time of the last successful poll cycle", {{"project", std::to_string(p.id)}})
          .set(static_cast<double>(*s.last_success_at));
    }
  }
}

// Gauges over the mirror's contents, read from the database once per scrape.
void add_mirror_gauges(Metrics& metrics, std::shared_ptr<MirrorGaugeReader> reader, Logger logger,
                       const Clock& clock) {
  std::map<std::string, Gauge*> runs;
  for (const char* state : {"active", "completed", "aborted", "deleted"}) {
    runs[state] = &metrics.gauge("runsync_runs", "Runs in the mirror by state", {{"state", state}});
  }
  Gauge& last_webhook =
      metrics.gauge("runsync_last_webhook_timestamp_seconds",
                    "Unix time the newest webhook delivery was stored (0: none yet)");
  Gauge& pending =
      metrics.gauge("runsync_outbox_pending", "Write-back commands waiting to be sent");
  Gauge& oldest = metrics.gauge("runsync_outbox_oldest_pending_age_seconds",
                                "Age of the oldest pending write-back command (0: none pending)");
  Gauge& refreshes = metrics.gauge("runsync_hint_pending_refreshes",
                                   "Refreshes TestRail webhook hints asked for, not done yet");
  metrics.add_collector([=, &last_webhook, &pending, &oldest, &refreshes, &clock] {
    auto g = reader->read();
    if (!g) {
      logger->warn("metrics: {}; the mirror's gauges keep their last values", g.message());
      return;
    }
    for (const auto& [state, gauge] : runs) {
      auto it = g->runs_by_state.find(state);
      gauge->set(it == g->runs_by_state.end() ? 0.0 : static_cast<double>(it->second));
    }
    last_webhook.set(g->last_webhook_at ? static_cast<double>(*g->last_webhook_at) : 0.0);
    pending.set(static_cast<double>(g->outbox_pending));
    refreshes.set(static_cast<double>(g->pending_refreshes));
    oldest.set(g->oldest_pending_at ? static_cast<double>(std::max<std::int64_t>(
                                          0, clock.unix_seconds() - *g->oldest_pending_at))
                                    : 0.0);
  });
}

}  // namespace

void watch_mirror(Metrics& metrics, Writer& writer, const std::string& database_path,
                  const std::vector<ProjectConfig>& polled_projects, Logger logger,
                  const Clock& clock) {
  watch_writer(metrics, writer);
  metrics.gauge_callback("runsync_database_size_bytes", "Size of the database file", {},
                         [database_path] { return file_size(database_path); });
  metrics.gauge_callback("runsync_wal_size_bytes", "Size of the write-ahead log", {},
                         [database_path] { return file_size(database_path + "-wal"); });
  auto report = read_mirror_report(database_path, clock.unix_seconds());
  if (report) {
    seed_last_polls(metrics, report.value(), polled_projects);
  } else {
    logger->warn("metrics: cannot read past poll cycles: {}", report.message());
  }
  auto reader = MirrorGaugeReader::open(database_path);
  if (reader) {
    add_mirror_gauges(metrics, std::shared_ptr<MirrorGaugeReader>(std::move(reader).value()),
                      logger, clock);
  } else {
    logger->warn("metrics: {}; no gauges over the mirror's contents", reader.message());
  }
}

}  // namespace runsync
