#include "bench/support/serve.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>

namespace runsync::bench {

std::vector<std::int64_t> add_runs(test::FakeTestRail& fake, int count,
                                   const nlohmann::json& fields) {
  fake.add_project(1);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < count; ++i) {
    nlohmann::json run = fields;
    run["project_id"] = 1;
    run["name"] = "Run " + std::to_string(i);
    ids.push_back(fake.add_run(std::move(run))["id"].get<std::int64_t>());
  }
  return ids;
}

std::string hinted_serve_config(const testing::TempDir& dir, const std::string& db,
                                const test::FakeTestRail& fake, int budget,
                                const std::string& hint_lines) {
  return dir.write(
      "runsync.toml",
      "[storage]\npath = \"" + db +
          "\"\n[webhook]\nlisten = \"127.0.0.1:0\"\n[testrail]\nurl = \"" + fake.base_url() +
          "\"\nuser = \"ci@example.com\"\napi_key_file = \"" + dir.write("key", "fake-api-key\n") +
          "\"\npoll_interval = \"30s\"\nmax_requests_per_minute = " + std::to_string(budget) +
          "\n[testrail_webhook]\nsecret_file = \"" +
          dir.write("secret", std::string(kHintSecret) + "\n") + "\"\n" + hint_lines +
          "[[project]]\nid = 1\ncode = \"P\"\n");
}

int post_hint(testing::TestHttpClient& client, std::int64_t run_id) {
  return client
      .post("/testrail/webhook", "{\"run_id\":" + std::to_string(run_id) + "}",
            {{"Content-Type", "application/json"}, {"X-Runsync-Secret", kHintSecret}})
      .status;
}

std::int64_t pending_refreshes(const std::string& db) {
  try {
    SQLite::Database read(db, SQLite::OPEN_READONLY);
    return read.execAndGet("SELECT count(*) FROM pending_refreshes").getInt64();
  } catch (const std::exception&) {
    return -1;
  }
}

std::string full_sync_config(const std::string& db, const std::string& url) {
  return "[storage]\npath = \"" + db + "\"\n[testrail]\nurl = \"" + url +
         "\"\nuser = \"ci@example.com\"\nmax_requests_per_minute = 100000\n"
         "[[project]]\nid = 1\ncode = \"ID\"\n[log]\nlevel = \"warn\"\n";
}

unsigned short listen_port(testing::ChildProcess& daemon) {
  const unsigned short port = testing::wait_for_listen_port(daemon);
  if (port == 0) std::fprintf(stderr, "the daemon did not start:\n%s\n", daemon.log().c_str());
  return port;
}

bool stop(testing::ChildProcess& daemon, std::chrono::seconds timeout) {
  daemon.signal(SIGTERM);
  const auto status = daemon.wait(timeout);
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

}  // namespace runsync::bench
