#include "daemon/wiring.h"

namespace runsync {

Logger logger_for(const Config& config) {
  Logger logger = make_logger(stderr_is_journal());
  if (auto level = parse_log_level(config.log.level)) set_log_level(logger, *level);
  return logger;
}

OpenOptions open_options_for(const Config& config) {
  OpenOptions options;
  options.durability = config.storage.synchronous;
  return options;
}

TestRailClientOptions client_options_for(const Config& config) {
  TestRailClientOptions options;
  options.base_url = config.testrail.url;
  options.user = config.testrail.user;
  options.api_key = config.testrail.api_key;
  options.request_timeout = config.testrail.request_timeout;
  options.max_requests_per_minute = config.testrail.max_requests_per_minute;
  options.ca_file = config.testrail.ca_file;
  return options;
}

PollerOptions poller_options_for(const Config& config) {
  PollerOptions options;
  options.projects = config.projects;
  options.poll_interval = config.testrail.poll_interval;
  options.full_sync_interval = config.testrail.full_sync_interval;
  return options;
}

HintEndpointOptions hint_endpoint_options_for(const Config& config) {
  HintEndpointOptions options;
  options.secret = config.testrail_webhook.secret;
  options.secret_header = config.testrail_webhook.secret_header;
  options.pointers.run_id = config.testrail_webhook.run_id;
  options.pointers.plan_id = config.testrail_webhook.plan_id;
  options.pointers.project_id = config.testrail_webhook.project_id;
  for (const ProjectConfig& p : config.projects) options.projects.insert(p.id);
  return options;
}

RefresherOptions refresher_options_for(const Config& config) {
  RefresherOptions options;
  options.projects = config.projects;
  options.min_refresh_interval = config.testrail_webhook.min_refresh_interval;
  options.max_requests_per_minute = config.testrail.max_requests_per_minute;
  return options;
}

}  // namespace runsync
