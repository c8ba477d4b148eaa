// Reading the secrets a config names (SPEC §3): each from its systemd
// credential, its environment variable or its file, in that order of
// precedence, trimmed of trailing white space. Error messages say where a
// secret came from, never what it is. Thread-safe: no shared state; it reads
// files and the given environment.
#pragma once

#include <string>

#include "core/status.h"
#include "daemon/config.h"

namespace runsync {

struct FileContents {
  std::string text;
  int error = 0;  // errno; 0 on success
};

// The whole file at `path`, or the errno that stopped reading it.
FileContents read_file(const std::string& path);

// "FILE:LINE: " of each secret's *_file key in the config; empty when unset.
struct SecretKeyLocations {
  std::string secret_file;
  std::string signing_secret_file;
  std::string api_key_file;
  std::string testrail_webhook_secret_file;
};

// Fills config.webhook.secret, config.webhook.signing_secret (checked to be
// "whsec_" + base64), config.testrail.api_key and, with testrail.url set,
// config.testrail_webhook.secret. With SecretUse::kRequired
// a secret that is configured but cannot be read is an error; with
// kNotNeeded it stays empty and the reason goes to config.unread_secrets.
Status resolve_secrets(const ConfigEnvironment& env, const SecretKeyLocations& locations,
                       SecretUse use, Config& config);

}  // namespace runsync
