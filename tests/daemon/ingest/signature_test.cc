// Standard Webhooks signatures, the constant-time compare and the body hash.
#include "daemon/ingest/signature.h"

#include <gtest/gtest.h>

#include <future>
#include <string>

namespace runsync {
namespace {

TEST(Signature, StandardWebhooksTestVector) {
  auto key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.is_ok());
  EXPECT_EQ(standard_webhook_signature(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                       R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_TRUE(verify_standard_webhook(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                      R"({"test": 2432232314})", 1614265330 + 10)
                  .is_ok());
  EXPECT_FALSE(verify_standard_webhook(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                       "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                       R"({"test": 2432232315})", 1614265330)
                   .is_ok());
  EXPECT_FALSE(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
  EXPECT_FALSE(SigningKey::parse("whsec_!!!").is_ok());
}

// The MAC context a thread keeps is keyed again when the key changes (a
// reload) and reused while it does not.
TEST(Signature, TheMacFollowsTheKeyAcrossCalls) {
  auto a = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  auto b = SigningKey::parse("whsec_c2VjcmV0LWtleS1iCg==");
  ASSERT_TRUE(a.is_ok());
  ASSERT_TRUE(b.is_ok());
  const char* kA = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  // Python's hmac over the same content with key b ("secret-key-b\n").
  const std::string b_sig = "v1,pc84RjfJdIq3GYRMVy3ZxVBEmAoKhjmt5BKMlREtc8A=";
  for (int i = 0; i < 2; ++i) {
    for (const SigningKey* key : {&a.value(), &a.value(), &b.value(), &a.value()}) {
      EXPECT_EQ(standard_webhook_signature(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                           R"({"test": 2432232314})"),
                key == &a.value() ? std::string(kA) : b_sig);
    }
  }
  // Another thread, its own context: the same answers.
  std::async(std::launch::async, [&] {
    EXPECT_EQ(standard_webhook_signature(b.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                         R"({"test": 2432232314})"),
              b_sig);
    EXPECT_EQ(standard_webhook_signature(a.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                         R"({"test": 2432232314})"),
              kA);
  }).get();
}

TEST(Signature, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "ab"));
}

// The body hash that keys deliveries without a webhook-id: FIPS 180-2's
// vectors, and the same answer again from the thread's reused context.
TEST(Signature, Sha256Hex) {
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace runsync
