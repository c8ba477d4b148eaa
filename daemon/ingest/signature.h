// Webhook authentication: the shared-secret header and Standard Webhooks
// signatures (HMAC-SHA256, see reference/upstream-facts.md). Stateless and
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace runsync {

// Compares in time that depends only on the lengths, not the contents.
bool constant_time_equals(std::string_view a, std::string_view b);

std::string sha256_hex(std::string_view data);

// A decoded Standard Webhooks key ("whsec_" + base64).
class SigningKey {
 public:
  // Errors when the text lacks the whsec_ prefix or is not base64.
  static StatusOr<SigningKey> parse(std::string_view whsec);
  const std::string& bytes() const { return key_; }

 private:
  explicit SigningKey(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
std::string standard_webhook_signature(const SigningKey& key, std::string_view id,
                                       std::string_view timestamp, std::string_view body);

// What can be checked of the Standard Webhooks headers before the body is
// read: all three present, and the timestamp an integer within ±300 s of
// `now` (unix seconds). The error says which check failed.
Status check_standard_webhook_headers(std::string_view id, std::string_view timestamp,
                                      std::string_view signature_header, std::int64_t now);

// Verifies the webhook-id / webhook-timestamp / webhook-signature headers
// over the raw body. `now` is unix seconds; the timestamp must be within
// ±300 s of it. The signature header may hold several space-separated
// entries; any matching v1 entry passes. The error says what failed
// (those of check_standard_webhook_headers, or no matching signature).
Status verify_standard_webhook(const SigningKey& key, std::string_view id,
                               std::string_view timestamp, std::string_view signature_header,
                               std::string_view body, std::int64_t now);

}  // namespace runsync
