// How `serve` and `sync` build their parts from a Config, so that each
// mapping from configuration to options is written once. Pure functions of
// the Config.
#pragma once

#include <cstdint>

#include "daemon/config.h"
#include "daemon/ingest/hint_endpoint.h"
#include "daemon/logging.h"
#include "daemon/testrail/poller.h"
#include "daemon/testrail/refresher.h"
#include "daemon/testrail/testrail_client.h"
#include "storage/database.h"

namespace runsync {

// The process's logger (to the journal when stderr is it) at log.level.
Logger logger_for(const Config& config);

// storage.synchronous → durability; the other options keep their defaults.
OpenOptions open_options_for(const Config& config);

// The TestRail client's URL, credentials, timeout and request budget.
TestRailClientOptions client_options_for(const Config& config);

// The projects and intervals to poll.
PollerOptions poller_options_for(const Config& config);

// TestRail's webhook endpoint: its secret, header, id pointers and the
// configured projects.
HintEndpointOptions hint_endpoint_options_for(const Config& config);

// The projects and the refresh window for hints.
RefresherOptions refresher_options_for(const Config& config);

}  // namespace runsync
