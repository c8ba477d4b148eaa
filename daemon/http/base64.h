// Base64 (RFC 4648 §4, with padding) through OpenSSL's EVP_EncodeBlock and
// EVP_DecodeBlock. Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace runsync {

std::string base64_encode(std::string_view bytes);

// The bytes `text` encodes; nullopt unless `text` is canonical padded
// base64: a multiple of 4 characters from the standard alphabet, with at
// most two '=' and only at the end. "" decodes to "".
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace runsync
