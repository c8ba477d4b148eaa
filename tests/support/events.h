// The tests' one builder of webhook events: the body a sender posts
// (SPEC §3) and the WebhookDelivery the listener makes of it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/webhook_event.h"
#include "storage/webhook_journal.h"

namespace runsync::testing {

// A webhook body: `event_name`, `timestamp`, a payload holding the run's
// `id` then `payload_tail`, `project_code`, then `top_tail`. Each tail is
// raw JSON members, each starting with a comma (",\"cases\":10").
inline std::string webhook_body(std::string_view event_name, std::int64_t run,
                                std::int64_t timestamp, std::string_view payload_tail = "",
                                std::string_view top_tail = "",
                                std::string_view project_code = "ID") {
  std::string body = R"({"event_name":")";
  body += event_name;
  body += R"(","timestamp":)" + std::to_string(timestamp) + R"(,"payload":{"id":)" +
          std::to_string(run);
  body += payload_tail;
  body += R"(},"project_code":")";
  body += project_code;
  body += '"';
  body += top_tail;
  body += '}';
  return body;
}

// run.completed for `run` at `ts`: 10 cases, `passed` of them passed.
inline std::string completed(std::int64_t run, std::int64_t ts, int passed) {
  return webhook_body("run.completed", run, ts,
                      R"(,"cases":10,"passed":)" + std::to_string(passed));
}

// `body` parsed as the listener parses it, received at `received_at` and
// keyed `key` ("sha256:" + body when empty). A body that does not parse
// fails the test.
inline WebhookDelivery delivery(const std::string& body, std::int64_t received_at = 1000,
                                std::string key = "") {
  auto ev = parse_webhook_event(body);
  EXPECT_TRUE(ev.is_ok()) << ev.message() << ": " << body;
  WebhookDelivery d;
  if (ev.is_ok()) d.event = std::move(ev).value();
  d.delivery_key = key.empty() ? "sha256:" + body : std::move(key);
  d.received_at = received_at;
  d.body = body;
  return d;
}

}  // namespace runsync::testing
