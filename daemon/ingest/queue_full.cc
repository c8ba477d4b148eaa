// answer_queue_full (queue_full.h).
#include "daemon/ingest/queue_full.h"

#include <spdlog/spdlog.h>

namespace runsync {

void answer_queue_full(const Writer& writer, LogRateLimiter& warnings, const Logger& logger,
                       std::string_view refusal, const Respond& respond) {
  if (auto note = warnings.admit("503")) {
    logger->warn("ingest queue full ({} waiting): {}{}", writer.depth(), refusal, *note);
  }
  respond(ServerResponse::queue_full());
}

}  // namespace runsync
