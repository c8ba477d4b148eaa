// Which TLS certificates runsync trusts (testrail.ca_file), and a
// certificate it does not trust as a configuration error: against a
// loopback HTTPS server whose CA and certificate are made here.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <string>

#include "daemon/config.h"
#include "daemon/testrail/poller.h"
#include "daemon/testrail/testrail_client.h"
#include "storage/store.h"
#include "support/fake_clock.h"
#include "support/fake_testrail.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using runsync::test::FakeTestRail;
using runsync::testing::FakeClock;
using runsync::testing::TempDir;

FakeTestRail::Options https(std::vector<std::string> hosts = {"127.0.0.1"}, bool expired = false) {
  FakeTestRail::Options o;
  o.tls = true;
  o.ca_issued = true;
  o.cert_hosts = std::move(hosts);
  o.expired = expired;
  return o;
}

TestRailClientOptions client_of(const FakeTestRail& fake, const std::string& ca_file) {
  TestRailClientOptions o = fake.client_options();
  o.ca_file = ca_file;
  o.max_backoff = std::chrono::seconds(1);
  o.jitter_seed = 5;
  return o;
}

// Each untrusted certificate fails its call at once, as a configuration
// error saying what is wrong, with nothing sent.
TEST(TlsTrust, AnUntrustedCertificateIsAConfigErrorSayingWhy) {
  FakeClock clock;
  TempDir dir;
  struct Case {
    const char* name;
    FakeTestRail::Options server;
    bool trust_ca;
    const char* reason;
    const char* advice;
  };
  const Case cases[] = {
      {"unknown issuer", https(), false,
       "certificate verify failed (SSL routines): unknown issuer (unable to get local issuer "
       "certificate)",
       "name that CA's certificate in testrail.ca_file"},
      {"expired", https({"127.0.0.1"}, true), true, "expired (certificate has expired)",
       "TestRail's certificate must be renewed"},
      {"host name mismatch", https({"testrail.example"}), true,
       "host name mismatch (IP address mismatch)",
       "testrail.url must name a host the certificate is for"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    FakeTestRail fake(c.server);
    fake.add_run({{"project_id", 1}});
    const std::string ca_file = c.trust_ca ? dir.write("ca.pem", fake.certificate_pem()) : "";
    auto client = TestRailClient::create(client_of(fake, ca_file), clock);
    auto r = client->get_run(1);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.error().kind, ApiErrorKind::kConfig) << r.error().describe();
    EXPECT_EQ(r.error().attempts, 1) << r.error().describe();
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(c.advice), std::string::npos) << r.error().message;
    EXPECT_EQ(fake.request_count(), 0u);
  }
}

TEST(TlsTrust, ACaInCaFileIsTrusted) {
  FakeClock clock;
  TempDir dir;
  FakeTestRail fake(https({"127.0.0.1", "localhost"}));
  fake.add_run({{"project_id", 1}});
  // A bundle: some other certificate first, then the CA.
  FakeTestRail other(https());
  const std::string ca_file =
      dir.write("bundle.pem", other.certificate_pem() + "\n" + fake.certificate_pem());
  auto client = TestRailClient::create(client_of(fake, ca_file), clock);
  auto r = client->get_run(1);
  ASSERT_TRUE(r.is_ok()) << r.error().describe();
  EXPECT_EQ(fake.request_count(), 1u);

  // A ca_file that is gone by the time it is read is reported, not retried.
  auto lost = TestRailClient::create(client_of(fake, dir.file("gone.pem")), clock);
  auto refused = lost->get_run(1);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.error().kind, ApiErrorKind::kConfig);
  EXPECT_NE(refused.error().message.find("cannot load " + dir.file("gone.pem")), std::string::npos)
      << refused.error().message;
}

// A poll cycle against an untrusted certificate fails once as a
// configuration error, after one handshake.
TEST(TlsTrust, APollCycleCountsAConfigError) {
  TempDir dir;
  FakeTestRail fake(https());
  fake.add_project(1);
  auto store = Store::open(dir.file("mirror.db"), OpenOptions{});
  ASSERT_TRUE(store.is_ok()) << store.message();
  Writer writer(std::move(store).value(), Writer::Options{});
  std::atomic<int> transport_errors{0};
  FakeClock clock(fake.now() * 1000);
  auto client = TestRailClient::create(client_of(fake, ""), clock, [&](const ApiEvent& e) {
    if (e.kind == ApiEvent::Kind::kTransportError) ++transport_errors;
  });
  Metrics metrics;
  PollerOptions popts;
  popts.projects = {{1, "ID"}};
  Poller poller(popts, *client, writer, metrics, null_logger(), clock);
  const CycleOutcome out = poller.run_cycle({1, "ID"}, PollKind::kActive);
  writer.stop();
  ASSERT_TRUE(out.error.has_value());
  EXPECT_TRUE(out.config_error);
  EXPECT_NE(out.error->find("unknown issuer"), std::string::npos) << *out.error;
  EXPECT_EQ(transport_errors.load(), 1);
  EXPECT_EQ(metrics.counter_sum("runsync_poll_cycles_total", {{"outcome", "config_error"}}), 1u);
  EXPECT_EQ(metrics.counter_sum("runsync_poll_cycles_total", {{"outcome", "failed"}}), 0u);
}

TEST(TlsTrust, CaFileIsValidatedRenderedAndLoadedBack) {
  TempDir dir;
  FakeTestRail fake(https());
  const std::string ca = dir.write("ca.pem", fake.certificate_pem());
  auto loaded = load_config(dir.write("ok.toml", "[testrail]\nca_file = \"" + ca + "\"\n"), {});
  ASSERT_TRUE(loaded.is_ok()) << loaded.message();
  EXPECT_EQ(loaded->testrail.ca_file, ca);
  const std::string rendered = render_config(*loaded);
  EXPECT_NE(rendered.find("\nca_file = \"" + ca + "\"\n"), std::string::npos) << rendered;
  auto again = load_config(dir.write("rendered.toml", rendered), {});
  ASSERT_TRUE(again.is_ok()) << again.message();
  EXPECT_EQ(again->testrail.ca_file, ca);
  auto unset = load_config(dir.write("unset.toml", ""), {});
  ASSERT_TRUE(unset.is_ok());
  EXPECT_EQ(render_config(*unset).find("ca_file"), std::string::npos);

  const std::string not_pem = dir.write("not.pem", "just text\n");
  struct Case {
    std::string value;
    std::string error;
  };
  const Case cases[] = {
      {dir.file("missing.pem"), "testrail.ca_file: cannot read " + dir.file("missing.pem")},
      {not_pem, "testrail.ca_file: " + not_pem + " holds no PEM certificate"},
      {"", "testrail.ca_file: must name a file of PEM certificates"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    const std::string file =
        dir.write("bad.toml", "[testrail]\nuser = \"u\"\nca_file = \"" + c.value + "\"\n");
    auto bad = load_config(file, {});
    ASSERT_FALSE(bad.is_ok());
    EXPECT_EQ(bad.message().rfind(file + ":3:", 0), 0u) << bad.message();
    EXPECT_NE(bad.message().find(c.error), std::string::npos) << bad.message();
  }
}

}  // namespace
}  // namespace runsync
