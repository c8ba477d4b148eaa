#include "daemon/ingest/signature.h"

#include "daemon/http/base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>

namespace runsync {

bool constant_time_equals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string sha256_hex(std::string_view data) {
  // OpenSSL 3's SHA256() fetches the algorithm from its provider and makes
  // a context on every call, more work than hashing a webhook body: fetch
  // once, keep a context per thread.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                                            EVP_MD_CTX_free);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int length = 0;
  if (md == nullptr || ctx == nullptr || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length != SHA256_DIGEST_LENGTH) {
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * SHA256_DIGEST_LENGTH, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

StatusOr<SigningKey> SigningKey::parse(std::string_view whsec) {
  constexpr std::string_view kPrefix = "whsec_";
  if (whsec.substr(0, kPrefix.size()) != kPrefix) {
    return Status::error("signing secret must start with whsec_");
  }
  auto key = base64_decode(whsec.substr(kPrefix.size()));
  if (!key || key->empty()) return Status::error("signing secret is not valid base64 after whsec_");
  return SigningKey(std::move(*key));
}

namespace {

// HMAC-SHA256 of `parts` one after the other, into `mac`; returns its
// length. OpenSSL 3's HMAC() fetches the MAC and the digest and makes a
// context on every call; here the MAC is fetched once, and each thread
// keeps a context keyed with the last key it used.
std::size_t hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts,
                        unsigned char* mac) {
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  struct Context {
    EVP_MAC_CTX* ctx = nullptr;
    std::string key;  // what ctx is keyed with, when keyed
    bool keyed = false;
    ~Context() { EVP_MAC_CTX_free(ctx); }
  };
  thread_local Context t;
  if (t.ctx == nullptr && hmac != nullptr) t.ctx = EVP_MAC_CTX_new(hmac);
  bool ok = t.ctx != nullptr;
  if (ok && t.keyed && t.key == key) {
    ok = EVP_MAC_init(t.ctx, nullptr, 0, nullptr) == 1;  // the same key again
  } else if (ok) {
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                                 OSSL_PARAM_construct_end()};
    t.keyed = false;
    ok = EVP_MAC_init(t.ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                      params) == 1;
    if (ok) {
      t.key.assign(key);
      t.keyed = true;
    }
  }
  for (std::string_view part : parts) {
    ok = ok && EVP_MAC_update(t.ctx, reinterpret_cast<const unsigned char*>(part.data()),
                              part.size()) == 1;
  }
  std::size_t length = 0;
  ok = ok && EVP_MAC_final(t.ctx, mac, &length, EVP_MAX_MD_SIZE) == 1;
  if (ok) return length;
  t.keyed = false;
  std::string content;
  for (std::string_view part : parts) content.append(part);
  unsigned int one_shot = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &one_shot);
  return one_shot;
}

}  // namespace

std::string standard_webhook_signature(const SigningKey& key, std::string_view id,
                                       std::string_view timestamp, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  const std::size_t length = hmac_sha256(key.bytes(), {id, ".", timestamp, ".", body}, mac);
  return "v1," + base64_encode(std::string_view(reinterpret_cast<const char*>(mac), length));
}

Status check_standard_webhook_headers(std::string_view id, std::string_view timestamp,
                                      std::string_view signature_header, std::int64_t now) {
  if (id.empty()) return Status::error("missing webhook-id header");
  if (timestamp.empty()) return Status::error("missing webhook-timestamp header");
  if (signature_header.empty()) return Status::error("missing webhook-signature header");
  std::int64_t ts = 0;
  auto [ptr, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc() || ptr != timestamp.data() + timestamp.size()) {
    return Status::error("webhook-timestamp is not an integer");
  }
  if (ts < now - 300 || ts > now + 300) {
    return Status::error("webhook-timestamp is more than 5 minutes from the local clock");
  }
  return Status::ok();
}

Status verify_standard_webhook(const SigningKey& key, std::string_view id,
                               std::string_view timestamp, std::string_view signature_header,
                               std::string_view body, std::int64_t now) {
  if (Status s = check_standard_webhook_headers(id, timestamp, signature_header, now); !s.is_ok()) {
    return s;
  }
  const std::string expected = standard_webhook_signature(key, id, timestamp, body);
  bool matched = false;
  std::size_t pos = 0;
  while (pos <= signature_header.size()) {
    std::size_t end = signature_header.find(' ', pos);
    if (end == std::string_view::npos) end = signature_header.size();
    const std::string_view entry = signature_header.substr(pos, end - pos);
    // Check every entry so the time taken does not reveal which matched.
    if (entry.substr(0, 3) == "v1," && constant_time_equals(entry, expected)) matched = true;
    pos = end + 1;
  }
  if (!matched) return Status::error("no webhook-signature entry matches");
  return Status::ok();
}

}  // namespace runsync
