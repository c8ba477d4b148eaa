// Reading the config file (SPEC §3) into a Config: the TOML parse, then every
// section's keys with their types and ranges. What needs more than one
// section, the secrets and the defaults is load_config's (config.cc).
#pragma once

#include <string>

#include "core/status.h"
#include "daemon/config.h"
#include "daemon/secrets.h"

namespace runsync {

// Locations ("FILE:LINE: ") of keys checked after the file has been read;
// empty when the key was not in the file.
struct KeyLocations {
  std::string testrail_url;
  std::string testrail_webhook_path;  // "FILE:LINE: " of testrail_webhook.path
  SecretKeyLocations secrets;
};

// Reads the file at `path` over the values already in `config`: a key the
// file sets replaces the value, one it leaves out keeps it. Records where
// the keys checked later stand in `locations`. On error the message names
// the problem, with "FILE:LINE:" (and ":COLUMN:" for TOML syntax) for one
// inside the file; `config` may then hold some of the file's values.
Status read_config_file(const std::string& path, Config& config, KeyLocations& locations);

}  // namespace runsync
