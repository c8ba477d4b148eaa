// A check that every body runsync parses goes through first: webhook
// events, TestRail API answers and TestRail webhook hints. Pure; safe from
// any thread.
#pragma once

#include <string_view>

#include "core/status.h"

namespace runsync {

// Ok unless `body` holds a NUL byte. JSON text never does (a string
// escapes every control character), and nlohmann takes one for the end of
// its input, so a body that is valid JSON up to a NUL would be accepted
// with whatever follows it unread. The error is "body is not valid JSON:
// it holds a NUL byte at offset N", N counted from the start of `body`;
// `kind` replaces "valid JSON" for bodies of another format (a form's
// NUL is written %00).
Status refuse_nul_byte(std::string_view body, std::string_view kind = "valid JSON");

}  // namespace runsync
