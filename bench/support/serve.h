// `runsync serve` and `runsync sync` as the benchmarks run them, against
// the fake TestRail server of the tests (tests/support): the configs, the
// fake's runs, hints, and starting and stopping the daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/fake_testrail.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace runsync::bench {

// The secret of the TestRail webhook in hinted_serve_config.
inline constexpr const char* kHintSecret = "s3cret";

// Adds project 1 to `fake` and `count` active runs in it, named "Run 0",
// "Run 1"... and with the fields of `fields` too; their ids in order.
std::vector<std::int64_t> add_runs(test::FakeTestRail& fake, int count,
                                   const nlohmann::json& fields = nlohmann::json::object());

// A config, written to `dir`, for `runsync serve` with its database at
// `db`, webhooks on a free loopback port, polling project 1 (code "P") of
// `fake` every 30 s within `budget` requests a minute, and TestRail
// webhook hints taken with kHintSecret; `hint_lines` (TOML lines) are added
// to [testrail_webhook]. Returns the config's path.
std::string hinted_serve_config(const testing::TempDir& dir, const std::string& db,
                                const test::FakeTestRail& fake, int budget,
                                const std::string& hint_lines = "");

// Posts a TestRail webhook hint for `run_id`; the answer's HTTP status.
int post_hint(testing::TestHttpClient& client, std::int64_t run_id);

// Rows in the pending_refreshes table of `db`; -1 when it cannot be read.
std::int64_t pending_refreshes(const std::string& db);

// The TOML of a config for `runsync sync --full` of project 1 (code "ID")
// of the TestRail at `url` into `db`, with no request budget to speak of;
// the API key goes in the environment (kSyncEnv).
std::string full_sync_config(const std::string& db, const std::string& url);
inline constexpr const char* kSyncEnv = "RUNSYNC_TESTRAIL_API_KEY=fake-api-key";

// The port `daemon` (`runsync serve`) listens on once it says so; 0, with
// "the daemon did not start:" and its log on stderr, when it does not.
unsigned short listen_port(testing::ChildProcess& daemon);

// Sends `daemon` SIGTERM and waits for it up to `timeout`; true when it
// exited 0.
bool stop(testing::ChildProcess& daemon, std::chrono::seconds timeout);

}  // namespace runsync::bench
