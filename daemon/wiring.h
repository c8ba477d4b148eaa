// How `serve` and `sync` build their parts from a Config, so that each
// mapping from configuration to options is written once. Pure functions of
// the Config (unix_now reads the clock).
#pragma once

#include <cstdint>

#include "daemon/config.h"
#include "daemon/logging.h"
#include "daemon/poller.h"
#include "daemon/testrail_client.h"
#include "storage/database.h"

namespace runsync {

// The wall clock in unix seconds: the clock of observations, journal rows
// and poll cycles.
std::int64_t unix_now();

// The process's logger (to the journal when stderr is it) at log.level.
Logger logger_for(const Config& config);

// storage.synchronous → durability; the other options keep their defaults.
OpenOptions open_options_for(const Config& config);

// The TestRail client's URL, credentials, timeout and request budget.
TestRailClientOptions client_options_for(const Config& config);

// The projects and intervals to poll.
PollerOptions poller_options_for(const Config& config);

}  // namespace runsync
