// The answer both webhook endpoints give when the writer's queue is full.
#pragma once

#include <string_view>

#include "daemon/http/http_server.h"
#include "daemon/logging.h"
#include "storage/writer.h"

namespace runsync {

// Answers 503 with Retry-After: 1 (ServerResponse::queue_full) and logs a
// warning "ingest queue full (N waiting): <refusal>", at most as often as
// `warnings` admits "503" lines. Thread safety: as `warnings` and `writer`.
void answer_queue_full(const Writer& writer, LogRateLimiter& warnings, const Logger& logger,
                       std::string_view refusal, const Respond& respond);

}  // namespace runsync
