#include "daemon/secrets.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

#include "daemon/ingest/signature.h"  // SigningKey::parse decides what a key is

namespace runsync {
namespace {

std::string trim_trailing_whitespace(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.pop_back();
  }
  return text;
}

// One secret and where it may come from, lowest priority first.
struct SecretSources {
  std::string name;           // e.g. "webhook.secret"
  std::string file_key;       // e.g. "webhook.secret_file"
  std::string file_path;      // from the config; empty when not set
  std::string file_location;  // "FILE:LINE: " of file_key
  const char* env_var;        // nullptr when there is none
  const char* credential;     // file name in $CREDENTIALS_DIRECTORY
};

struct ResolvedSecret {
  std::string value;
  std::string origin;  // for error messages; never the value
};

StatusOr<ResolvedSecret> resolve_secret(const SecretSources& sources,
                                        const ConfigEnvironment& env) {
  if (const auto dir = env.get("CREDENTIALS_DIRECTORY"); dir && !dir->empty()) {
    const std::string path = *dir + "/" + sources.credential;
    FileContents contents = read_file(path);
    if (contents.error != ENOENT) {
      if (contents.error != 0) {
        return Status::error("cannot read credential '" + path + "' for " + sources.name + ": " +
                             std::strerror(contents.error));
      }
      std::string value = trim_trailing_whitespace(std::move(contents.text));
      if (value.empty()) {
        return Status::error("credential '" + path + "' for " + sources.name + " is empty");
      }
      return ResolvedSecret{std::move(value), "credential '" + path + "'"};
    }
  }
  if (sources.env_var != nullptr) {
    if (const auto value = env.get(sources.env_var); value && !value->empty()) {
      std::string trimmed = trim_trailing_whitespace(*value);
      if (!trimmed.empty()) {
        return ResolvedSecret{std::move(trimmed), std::string("$") + sources.env_var};
      }
    }
  }
  if (sources.file_path.empty()) return ResolvedSecret{};
  const std::string prefix = sources.file_location + sources.file_key + ": ";
  FileContents contents = read_file(sources.file_path);
  if (contents.error != 0) {
    return Status::error(prefix + "cannot read '" + sources.file_path +
                         "': " + std::strerror(contents.error));
  }
  std::string value = trim_trailing_whitespace(std::move(contents.text));
  if (value.empty()) return Status::error(prefix + "'" + sources.file_path + "' is empty");
  return ResolvedSecret{std::move(value), prefix + "'" + sources.file_path + "'"};
}

// With SecretUse::kNotNeeded a secret that cannot be read stays empty.
StatusOr<ResolvedSecret> resolve_for(SecretUse use, const SecretSources& sources,
                                     const ConfigEnvironment& env, Config& config) {
  auto resolved = resolve_secret(sources, env);
  if (!resolved && use == SecretUse::kNotNeeded) {
    config.unread_secrets.push_back(resolved.message());
    return ResolvedSecret{};
  }
  return resolved;
}

}  // namespace

Status resolve_secrets(const ConfigEnvironment& env, const SecretKeyLocations& locations, SecretUse use,
                       Config& config) {
  auto secret = resolve_for(use, {"webhook.secret", "webhook.secret_file", config.webhook.secret_file,
                                locations.secret_file, "RUNSYNC_WEBHOOK_SECRET", "webhook-secret"},
                            env, config);
  if (!secret) return secret.status();
  config.webhook.secret = std::move(secret->value);

  // The signing secret has no environment variable, only the credential.
  auto signing = resolve_for(
      use, {"webhook.signing_secret", "webhook.signing_secret_file", config.webhook.signing_secret_file,
       locations.signing_secret_file, nullptr, "webhook-signing-secret"},
      env, config);
  if (!signing) return signing.status();
  if (!signing->value.empty()) {
    const std::string_view value = signing->value;
    if (!SigningKey::parse(value).is_ok()) {
      std::string origin = signing->origin;
      return Status::error(origin + ": signing secret must be \"whsec_\" followed by base64");
    }
  }
  config.webhook.signing_secret = std::move(signing->value);

  auto api_key =
      resolve_for(use, {"testrail.api_key", "testrail.api_key_file", config.testrail.api_key_file,
                      locations.api_key_file, "RUNSYNC_TESTRAIL_API_KEY", "testrail-api-key"},
                  env, config);
  if (!api_key) return api_key.status();
  config.testrail.api_key = std::move(api_key->value);

  // TestRail's webhooks are taken only with testrail.url set.
  if (config.testrail.url.empty()) return Status::ok();
  auto hint_secret = resolve_for(
      use, {"testrail_webhook.secret", "testrail_webhook.secret_file",
            config.testrail_webhook.secret_file, locations.testrail_webhook_secret_file,
            "RUNSYNC_TESTRAIL_WEBHOOK_SECRET", "testrail-webhook-secret"},
      env, config);
  if (!hint_secret) return hint_secret.status();
  config.testrail_webhook.secret = std::move(hint_secret->value);
  return Status::ok();
}

FileContents read_file(const std::string& path) {
  FileContents result;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    result.error = errno;
    return result;
  }
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) result.text.append(buffer, n);
  if (std::ferror(file)) result.error = errno != 0 ? errno : EIO;
  std::fclose(file);
  return result;
}

}  // namespace runsync
