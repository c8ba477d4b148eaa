#include "core/duration.h"

#include <cstdint>
#include <limits>
#include <string_view>

namespace runsync {
namespace {

using std::chrono::milliseconds;

struct DurationUnit {
  std::string_view suffix;
  std::int64_t ms;
};
// Largest first: render_duration picks the first unit that divides exactly.
constexpr DurationUnit kDurationUnits[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  // 18 digits always fit in an int64.
  if (digits == 0 || digits > 18) return std::nullopt;
  const std::string_view suffix = std::string_view(text).substr(digits);
  const std::int64_t count = std::stoll(text.substr(0, digits));
  if (count == 0) return std::nullopt;
  for (const DurationUnit& unit : kDurationUnits) {
    if (suffix != unit.suffix) continue;
    if (count > std::numeric_limits<std::int64_t>::max() / unit.ms) return std::nullopt;
    return milliseconds(count * unit.ms);
  }
  return std::nullopt;
}

std::string render_duration(std::chrono::milliseconds duration) {
  const std::int64_t ms = duration.count();
  for (const DurationUnit& unit : kDurationUnits) {
    if (ms != 0 && ms % unit.ms == 0) {
      return std::to_string(ms / unit.ms) + std::string(unit.suffix);
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace runsync
