#include "daemon/wiring.h"

#include <chrono>

namespace runsync {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Logger logger_for(const Config& config) {
  Logger logger = make_logger(stderr_is_journal());
  if (auto level = parse_log_level(config.log.level)) set_log_level(logger, *level);
  return logger;
}

OpenOptions open_options_for(const Config& config) {
  OpenOptions options;
  options.durability =
      config.storage.synchronous == "normal" ? Durability::kNormal : Durability::kFull;
  return options;
}

TestRailClientOptions client_options_for(const Config& config) {
  TestRailClientOptions options;
  options.base_url = config.testrail.url;
  options.user = config.testrail.user;
  options.api_key = config.testrail.api_key;
  options.request_timeout = config.testrail.request_timeout;
  options.max_requests_per_minute = config.testrail.max_requests_per_minute;
  return options;
}

PollerOptions poller_options_for(const Config& config) {
  PollerOptions options;
  options.projects = config.projects;
  options.poll_interval = config.testrail.poll_interval;
  options.full_sync_interval = config.testrail.full_sync_interval;
  return options;
}

}  // namespace runsync
