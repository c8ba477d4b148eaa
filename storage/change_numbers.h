// The numbers readers page by: run_changes.seq (= runs.change_seq) and
// webhook_events.seq. Each new number is the larger of the table's largest
// plus one and kNumbersPerMillisecond × the unix time in milliseconds when
// it is issued, so numbers rise with every row and also with the clock.
//
// Why the clock: a file restored from a replica that lacks the newest rows
// must not issue again the numbers the lost file had published. Those were
// issued before the loss, so, unless more than kNumbersPerMillisecond rows
// were written in a millisecond, they are below kNumbersPerMillisecond ×
// (the time of the loss + 1 ms); every number the restored file issues
// later is above that (docs/schema.md states the contract). At 1000 per
// millisecond the numbers stay below 2^53 (exact in a JavaScript number)
// until the year 2255.
#pragma once

#include <cstdint>

namespace runsync {

inline constexpr std::int64_t kNumbersPerMillisecond = 1000;

// The lowest number that may be issued at `unix_ms`.
inline std::int64_t lowest_number_at(std::int64_t unix_ms) {
  return unix_ms * kNumbersPerMillisecond;
}

}  // namespace runsync
