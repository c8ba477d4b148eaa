#include "daemon/app.h"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <thread>

#include "core/outbox_command.h"
#include "daemon/database_health.h"
#include "daemon/http/http_server.h"
#include "daemon/ingest/hint_endpoint.h"
#include "daemon/ingest/router.h"
#include "daemon/ingest/webhook_endpoint.h"
#include "daemon/metrics.h"
#include "daemon/mirror_metrics.h"
#include "daemon/pruner.h"
#include "daemon/sd_notify.h"
#include "daemon/testrail/outbox_worker.h"
#include "daemon/testrail/poller.h"
#include "daemon/testrail/project_cycle.h"
#include "daemon/testrail/refresher.h"
#include "daemon/wiring.h"
#include "storage/checkpointer.h"
#include "storage/database.h"
#include "storage/poller_mark.h"
#include "storage/webhook_journal.h"
#include "storage/write_path.h"
#include "storage/writer.h"

namespace runsync {
namespace {

namespace asio = boost::asio;

StatusOr<WebhookAuth> auth_from(const Config& config) {
  WebhookAuth auth;
  auth.secret = config.webhook.secret;
  if (!config.webhook.signing_secret.empty()) {
    auto key = SigningKey::parse(config.webhook.signing_secret);
    if (!key) return key.status();
    auth.signing_key = std::move(key).value();
  }
  return auth;
}

}  // namespace

struct App::Impl {
  // Every part reads time from this one clock.
  const Clock& clock = real_clock();
  Config config;
  ConfigEnvironment env;
  Logger logger;
  Metrics metrics;
  SdNotifier notifier = SdNotifier::from_process();
  asio::io_context ioc{1};
  std::unique_ptr<Writer> writer;
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<WebhookEndpoint> endpoint;
  std::unique_ptr<Router> router;
  // One request budget for polling, write-back and hint refreshes.
  std::unique_ptr<RateLimiter> limiter;
  std::unique_ptr<TestRailClient> client;
  std::unique_ptr<Poller> poller;
  // TestRail's webhooks (SPEC §4a): the refresher's own client and poller.
  std::unique_ptr<TestRailClient> hint_client;
  std::unique_ptr<ProjectCycle> hint_cycle;
  std::unique_ptr<Refresher> refresher;
  std::thread refresher_thread;
  std::unique_ptr<HintEndpoint> hints;
  std::unique_ptr<PollerMark> poller_mark;
  std::thread poller_thread;
  std::unique_ptr<OutboxWorker> outbox;
  std::thread outbox_thread;
  std::unique_ptr<Pruner> pruner;
  std::thread pruner_thread;
  std::unique_ptr<HttpServer> server;
  asio::signal_set signals{ioc};
  asio::steady_timer watchdog_timer{ioc};
  asio::steady_timer shutdown_timer{ioc};
  asio::steady_timer summary_timer{ioc};
  std::map<std::string, std::uint64_t> last_summary;
  LogRateLimiter listener_warnings{clock};
  bool stopping = false;
  Clock::TimePoint stop_deadline;

  Impl(Config c, ConfigEnvironment e, Logger l)
      : config(std::move(c)), env(std::move(e)), logger(std::move(l)) {}

  void arm_watchdog() {
    auto interval = notifier.watchdog_interval();
    if (!interval) return;
    watchdog_timer.expires_after(*interval / 2);
    watchdog_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      (void)notifier.watchdog();
      arm_watchdog();
    });
  }

  // One line a minute: what happened since the last one. Also the
  // service's STATUS= line.
  void arm_summary() {
    summary_timer.expires_after(std::chrono::seconds(60));
    summary_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      log_summary();
      arm_summary();
    });
  }

  void log_summary() {
    // How much the series of counter `name` whose labels include `match`
    // (all when empty) grew since the last summary.
    auto delta = [&](const std::string& name, const Labels& match = {}) {
      std::string key = name;
      for (const auto& [label, value] : match) key += " " + label + "=" + value;
      const std::uint64_t now_value = metrics.counter_sum(name, match);
      const std::uint64_t d = now_value - last_summary[key];
      last_summary[key] = now_value;
      return d;
    };
    const char* kEvents = "runsync_webhook_events_total";
    auto webhooks = [&](WebhookResult r) {
      return delta(kEvents, {{"result", webhook_result_name(r)}});
    };
    const auto applied = webhooks(WebhookResult::kApplied);
    const auto duplicate = webhooks(WebhookResult::kDuplicate);
    const auto stale = webhooks(WebhookResult::kStale);
    const auto ignored = webhooks(WebhookResult::kIgnored);
    const auto all = delta(kEvents);
    const auto refused = all - applied - duplicate - stale - ignored;
    const char* kPolls = "runsync_poll_cycles_total";
    const auto polls_ok = delta(kPolls, {{"outcome", poll_outcome_name(PollOutcome::kOk)}});
    const auto polls_all = delta(kPolls);
    const auto outbox_done = delta("runsync_outbox_commands_total",
                                   {{"outcome", outbox_outcome_name(OutboxOutcome::kDone)}});
    std::string hint_part;
    if (hints) {
      const char* kHints = "runsync_testrail_hints_total";
      const auto queued = delta(kHints, {{"result", hint_result_name(HintResult::kQueued)}});
      const auto hints_ignored =
          delta(kHints, {{"result", hint_result_name(HintResult::kIgnored)}});
      const auto hints_all = delta(kHints);
      const char* kRefreshes = "runsync_hint_refreshes_total";
      const auto refresh_failed =
          delta(kRefreshes, {{"outcome", refresh_outcome_name(RefreshOutcome::kFailed)}});
      const auto refresh_all = delta(kRefreshes);
      hint_part = fmt::format(
          "; testrail hints queued={} ignored={} refused={}, refreshes ok={} failed={}", queued,
          hints_ignored, hints_all - queued - hints_ignored, refresh_all - refresh_failed,
          refresh_failed);
    }
    logger->info(
        "summary (last 60s): webhooks applied={} duplicate={} stale={} ignored={} refused={}; "
        "polls ok={} failed={}; outbox done={}{}; queue depth {}",
        applied, duplicate, stale, ignored, refused, polls_ok, polls_all - polls_ok, outbox_done,
        hint_part, writer->depth());
    std::string status = "webhooks/min " + std::to_string(all);
    if (poller) {
      const auto reason = poller->not_ready_reason();
      status += reason ? "; polling: " + *reason : "; polling ok";
    }
    (void)notifier.status(status);
  }

  void wait_signals() {
    signals.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        reload();
        return wait_signals();
      }
      shutdown(signo);
    });
  }

  void reload() {
    (void)notifier.reloading();
    auto fresh = load_config(config.source_path, env);
    if (!fresh) {
      logger->error("reload failed: {}; keeping the previous configuration", fresh.message());
      (void)notifier.ready();
      return;
    }
    auto auth = auth_from(fresh.value());
    if (!auth) {
      logger->error("reload failed: {}; keeping the previous configuration", auth.message());
      (void)notifier.ready();
      return;
    }
    endpoint->set_auth(std::move(auth).value());
    if (hints) hints->set_secret(fresh->testrail_webhook.secret);
    if (client) client->set_api_key(fresh->testrail.api_key);
    if (hint_client) hint_client->set_api_key(fresh->testrail.api_key);
    if (auto level = parse_log_level(fresh->log.level)) set_log_level(logger, *level);
    config.webhook.secret = fresh->webhook.secret;
    config.webhook.signing_secret = fresh->webhook.signing_secret;
    config.testrail.api_key = fresh->testrail.api_key;
    config.testrail_webhook.secret = fresh->testrail_webhook.secret;
    config.log.level = fresh->log.level;
    logger->info("reloaded secrets and log level ({}){}", fresh->log.level,
                 client ? "; later TestRail requests carry the reloaded API key" : "");
    reload_retention(fresh->retention);
    (void)notifier.ready();
  }

  // A changed [retention] takes effect at the pruner's next round.
  void reload_retention(const Config::Retention& fresh) {
    const Config::Retention& old = config.retention;
    if (fresh.interval == old.interval && fresh.webhook_events == old.webhook_events &&
        fresh.poll_cycles == old.poll_cycles && fresh.run_changes == old.run_changes) {
      return;
    }
    config.retention = fresh;
    if (pruner) pruner->reconfigure(fresh);
    auto window = [](std::chrono::milliseconds w) {
      return w.count() == 0 ? std::string("for ever") : render_duration(w);
    };
    logger->info(
        "reloaded retention: every {}, keeping webhook_events {}, poll_cycles {}, "
        "run_changes {}",
        render_duration(fresh.interval), window(fresh.webhook_events), window(fresh.poll_cycles),
        window(fresh.run_changes));
  }

  void shutdown(int signo) {
    if (stopping) return;
    stopping = true;
    logger->info("received {}: stopping; finishing {} queued writes", signo == SIGINT ? "SIGINT" : "SIGTERM",
                 writer->depth());
    (void)notifier.stopping();
    signals.cancel();
    watchdog_timer.cancel();
    summary_timer.cancel();
    server->stop_accepting();
    if (outbox) outbox->stop();
    if (refresher) refresher->stop();
    if (poller) poller->stop();  // cancels waits and the request in flight
    if (pruner) pruner->stop();
    // The worker records how its last command ended (pending again when it
    // was not sent) before the writer stops taking writes.
    if (outbox_thread.joinable()) outbox_thread.join();
    writer->stop();  // commits everything queued; answers are posted to this loop
    server->close_sessions();
    stop_deadline = clock.now() + std::chrono::seconds(2);
    wait_sessions_closed();
  }

  void wait_sessions_closed() {
    if (server->open_sessions() == 0 || clock.now() >= stop_deadline) {
      ioc.stop();
      return;
    }
    shutdown_timer.expires_after(std::chrono::milliseconds(10));
    shutdown_timer.async_wait([this](const boost::system::error_code&) { wait_sessions_closed(); });
  }

  // Raises the soft open-file limit to the hard one; warns when even that
  // leaves too little room for `max_connections` sockets beside the
  // database's files, the outbound connections and the journal.
  void check_open_file_limit(std::uint64_t max_connections) {
    constexpr std::uint64_t kHeadroom = 64;
    const OpenFileLimit limit = raise_open_file_limit();
    if (!limit.error.empty()) {
      logger->debug("open-file limit not raised ({}): it stays at {}", limit.error, limit.soft);
    }
    if (limit.soft < max_connections + kHeadroom) {
      logger->warn("open-file limit is {} (hard limit {}), less than webhook.max_connections ({}) "
                   "+ {} for the database and outbound connections: raise LimitNOFILE= or lower "
                   "webhook.max_connections; meanwhile connections beyond the limit wait in the "
                   "listen backlog",
                   limit.soft, limit.hard, max_connections, kHeadroom);
    }
  }

  int serve() {
    // A file-size limit (systemd's LimitFSIZE=) makes a write fail like a
    // full disk: reported and retried, not a crash by SIGXFSZ.
    ::signal(SIGXFSZ, SIG_IGN);
    if (!open_storage()) return 1;
    watch_database_writes(*writer, config.storage.path, metrics, logger, clock);
    watch_mirror(metrics, *writer, config.storage.path,
                 config.testrail.url.empty() ? std::vector<ProjectConfig>{} : config.projects,
                 logger, clock);
    register_process_metrics(metrics);
    metrics.gauge("runsync_build_info", "Build information",
                  {{"version", RUNSYNC_VERSION}, {"schema", std::to_string(latest_schema_version())}})
        .set(1);
    if (!config.testrail.url.empty()) build_testrail_parts();
    if (!start_listener()) {
      writer->stop();
      return 1;
    }
    signals.add(SIGTERM);
    signals.add(SIGINT);
    signals.add(SIGHUP);
    wait_signals();
    arm_watchdog();
    arm_summary();
    start_workers();
    (void)notifier.ready();
    (void)notifier.status("serving webhooks");

    ioc.run();
    stop_workers();
    logger->info("stopped");
    return 0;
  }

  // The database, its single writer and its checkpointer.
  bool open_storage() {
    WritePathOptions options;
    options.open = open_options_for(config);
    options.open.clock = &clock;
    options.queue_capacity = config.webhook.queue_capacity;
    options.max_batch = config.storage.max_batch;
    options.checkpoints = config.storage.checkpoints;
    options.on_checkpoint_status = checkpoint_status_logger();
    options.on_backstop = [this](int mib, int limit_mib) {
      logger->warn(
          "the WAL holds {} MiB although storage.checkpoints = \"external\": is the replicator "
          "(litestream replicate) running? runsync checkpoints it until it is below {} MiB",
          mib, limit_mib);
    };
    auto path = open_write_path(config.storage.path, std::move(options));
    if (!path) {
      logger->critical("{}; not starting", path.message());
      return false;
    }
    if (path->unsplit_sync) {
      logger->warn("{}; each batch waits for its own sync", *path->unsplit_sync);
    }
    writer = std::move(path->writer);
    checkpointer = std::move(path->checkpointer);
    return true;
  }

  // Counts failed checkpoints; logs the first of a run of failures, then
  // about once a minute while it lasts, and the recovery.
  std::function<void(const std::string&, std::uint64_t)> checkpoint_status_logger() {
    Counter& failures = metrics.counter("runsync_checkpoint_failures_total",
                                        "WAL checkpoints that failed (the WAL grows meanwhile)");
    const auto retry_ms =
        static_cast<std::uint64_t>(Checkpointer::Options{}.interval.count());
    return [this, &failures, retry_ms](const std::string& error, std::uint64_t in_a_row) {
      if (error.empty()) {
        logger->info("WAL checkpoints succeed again");
        return;
      }
      failures.inc();
      const std::uint64_t every =
          std::max<std::uint64_t>(1, 60000 / std::max<std::uint64_t>(1, retry_ms));
      if (in_a_row == 1 || in_a_row % every == 0) {
        logger->error(
            "WAL checkpoint failed ({} in a row): {}; the -wal file grows until one succeeds, "
            "retrying every {} ms",
            in_a_row, error, retry_ms);
      }
    };
  }

  // Everything that spends the TestRail request budget, on one limiter:
  // polling, hint refreshes (their own client, first in line) and
  // write-back; and the endpoint that takes TestRail's webhooks.
  void build_testrail_parts() {
    limiter = std::make_unique<RateLimiter>(config.testrail.max_requests_per_minute, clock);
    client = TestRailClient::create(client_options_for(config), clock,
                                    make_api_observer(metrics, logger), limiter.get());
    poller = std::make_unique<Poller>(poller_options_for(config), *client, *writer, metrics, logger,
                                      clock);
    TestRailClientOptions hint_options = client_options_for(config);
    hint_options.priority = RequestPriority::kHint;
    hint_client = TestRailClient::create(std::move(hint_options), clock,
                                         make_api_observer(metrics, logger), limiter.get());
    hint_cycle = std::make_unique<ProjectCycle>(*hint_client, *writer, metrics, logger, clock);
    refresher = std::make_unique<Refresher>(refresher_options_for(config), *hint_client,
                                            *hint_cycle, *writer, metrics, logger, clock);
    hints = std::make_unique<HintEndpoint>(hint_endpoint_options_for(config), *writer, metrics,
                                           logger, clock, [this] { refresher->notify(); });
    auto mark = PollerMark::hold(config.storage.path);
    if (mark) {
      poller_mark = std::move(mark).value();
    } else {
      logger->warn("{}; `runsync status` will call a running poll interrupted", mark.message());
    }
    OutboxWorker::Options outbox_options;
    for (const auto& p : config.projects) outbox_options.projects.push_back(p.id);
    outbox = std::make_unique<OutboxWorker>(config.storage.path, *client, *writer, metrics, logger,
                                            clock, outbox_options);
  }

  // The webhook endpoint, the router and the HTTP listener, listening.
  bool start_listener() {
    auto auth = auth_from(config);
    if (!auth) {
      logger->critical("webhook.signing_secret: {}; not starting", auth.message());
      return false;
    }
    std::map<std::string, std::int64_t> projects;
    for (const auto& p : config.projects) projects[p.code] = p.id;
    endpoint = std::make_unique<WebhookEndpoint>(std::move(auth).value(), projects, *writer,
                                                 metrics, logger, clock);
    const auto listen = parse_listen_address(config.webhook.listen);
    if (!listen) {
      logger->critical("webhook.listen '{}' is not host:port; not starting", config.webhook.listen);
      return false;
    }
    HttpServerOptions sopts;
    sopts.host = listen->host;
    sopts.port = listen->port;
    sopts.max_body_bytes = config.webhook.max_body_bytes;
    sopts.max_connections = config.webhook.max_connections;
    sopts.min_request_rate = config.webhook.min_request_rate;
    sopts.min_rate_grace = config.webhook.min_rate_grace;
    check_open_file_limit(config.webhook.max_connections);
    // /readyz is about taking webhooks: the database's writes alone, not
    // polling, so a balancer keeps sending while TestRail is down.
    router = std::make_unique<Router>(config.webhook.path, *endpoint, *writer, metrics, logger);
    if (hints) router->serve_hints(config.testrail_webhook.path, *hints);
    server = std::make_unique<HttpServer>(ioc, sopts, [this](ServerRequest&& req, Respond respond) {
      router->handle(std::move(req), std::move(respond));
    });
    server->set_head_check(
        [this](const ServerRequest& head) { return router->answer_from_head(head); });
    server->set_reject_observer(
        [this](int status, const std::string& reason, const std::string& remote) {
          router->count_response(status);
          if (auto note = listener_warnings.admit("refused " + std::to_string(status))) {
            logger->warn("request from {} refused ({}): {}{}", remote, status, reason, *note);
          }
        });
    server->set_accept_pause_observer(
        [this](const std::string& error, std::chrono::milliseconds retry_in) {
          log_accept_pause(error, retry_in);
        });
    server->set_shed_observer(shed_observer());
    if (Status s = server->start(); !s.is_ok()) {
      logger->critical("{}; not starting", s.message());
      return false;
    }
    logger->info("runsync {} serving webhooks on {}:{}{} (database {}, schema {})",
                 RUNSYNC_VERSION, sopts.host, server->port(), config.webhook.path,
                 config.storage.path, latest_schema_version());
    return true;
  }

  // Counts and logs connections the listener closed to stay open to others.
  ShedObserver shed_observer() {
    // Both series exist from the start, at 0.
    Counter* shed_slow = &metrics.counter(
        "runsync_http_connections_shed_total",
        "Connections closed without an answer to keep the listener open, by reason",
        {{"reason", "slow"}});
    Counter* shed_at_cap = &metrics.counter(
        "runsync_http_connections_shed_total",
        "Connections closed without an answer to keep the listener open, by reason",
        {{"reason", "at_cap"}});
    return [this, shed_slow, shed_at_cap](const char* reason, const std::string& remote) {
      const bool slow = std::string_view(reason) == "slow";
      (slow ? shed_slow : shed_at_cap)->inc();
      auto note = listener_warnings.admit(std::string("shed ") + reason);
      if (!note) return;
      if (slow) {
        logger->warn(
            "connection from {} closed: its request came slower than "
            "webhook.min_request_rate{}",
            remote, *note);
      } else {
        logger->warn(
            "connection from {} closed to take a new one at webhook.max_connections: "
            "its request had not passed the header checks{}",
            remote, *note);
      }
    };
  }

  void log_accept_pause(const std::string& error, std::chrono::milliseconds retry_in) {
    if (error.empty()) {
      if (auto note = listener_warnings.admit("at max_connections")) {
        logger->warn("{} connections open (webhook.max_connections): new ones wait in the "
                     "listen backlog until one closes{}",
                     config.webhook.max_connections, *note);
      }
    } else if (auto note = listener_warnings.admit("accept failed")) {
      logger->warn("accepting a connection failed: {}; new connections wait in the listen "
                   "backlog, retrying in {} ms{}",
                   error, retry_in.count(), *note);
    }
  }

  // The threads of polling, hint refreshes, write-back and retention.
  void start_workers() {
    if (config.testrail.url.empty()) {
      logger->info("no testrail.url configured: polling and write-back are off");
    } else {
      logger->info("polling {} every {} s (full sync every {} s) for {} project(s)",
                   config.testrail.url,
                   std::chrono::duration_cast<std::chrono::seconds>(config.testrail.poll_interval)
                       .count(),
                   std::chrono::duration_cast<std::chrono::seconds>(
                       config.testrail.full_sync_interval)
                       .count(),
                   config.projects.size());
      poller_thread = std::thread([this] { poller->run(); });
      outbox_thread = std::thread([this] { outbox->run(); });
      refresher_thread = std::thread([this] { refresher->run(); });
      log_hint_endpoint();
    }
    pruner = std::make_unique<Pruner>(config.retention, *writer, metrics, logger, clock);
    pruner_thread = std::thread([this] { pruner->run(); });
  }

  void log_hint_endpoint() {
    if (config.testrail_webhook.secret.empty()) {
      logger->warn("taking TestRail webhooks on {} WITHOUT a secret: anyone who can reach the "
                   "listener can make runsync spend its API budget; set "
                   "testrail_webhook.secret_file, $RUNSYNC_TESTRAIL_WEBHOOK_SECRET or the "
                   "testrail-webhook-secret credential",
                   config.testrail_webhook.path);
    } else {
      logger->info("taking TestRail webhooks on {} (secret in header {}); refreshing a run at "
                   "most once per {}",
                   config.testrail_webhook.path, config.testrail_webhook.secret_header,
                   render_duration(config.testrail_webhook.min_refresh_interval));
    }
  }

  // After the event loop ended (shutdown() stopped the workers and the
  // writer): joins what is left.
  void stop_workers() {
    if (outbox) outbox->stop();
    if (refresher) refresher->stop();
    if (poller) poller->stop();
    if (outbox_thread.joinable()) outbox_thread.join();
    if (refresher_thread.joinable()) refresher_thread.join();
    if (poller_thread.joinable()) poller_thread.join();
    if (pruner) pruner->stop();
    if (pruner_thread.joinable()) pruner_thread.join();
    writer->stop();
  }
};

App::App(Config config, ConfigEnvironment env, Logger logger)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(env), std::move(logger))) {}
App::~App() = default;
int App::serve() { return impl_->serve(); }

}  // namespace runsync
