#include "bench/support/event_stream.h"

namespace runsync::bench {

std::string delivery_key(std::uint64_t k) {
  static const char* const kHex = "0123456789abcdef";
  std::string key = "sha256:";
  std::uint64_t x = k * 0x9e3779b97f4a7c15ULL + 1;
  for (int i = 0; i < 64; ++i) {
    if (i % 16 == 0) {
      x ^= x >> 31;
      x *= 0xbf58476d1ce4e5b9ULL;
      x ^= x >> 29;
    }
    key += kHex[(x >> ((i % 16) * 4)) & 15];
  }
  return key;
}

}  // namespace runsync::bench
