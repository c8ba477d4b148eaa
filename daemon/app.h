// The daemon: owns every part (database writer, HTTP listener, poller,
// signals, service-manager notifications) and runs them until SIGTERM.
#pragma once

#include <memory>
#include <string>

#include "daemon/config.h"
#include "daemon/logging.h"

namespace runsync {

class App {
 public:
  App(Config config, ConfigEnvironment env, Logger logger);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Runs `runsync serve` until SIGTERM or SIGINT; returns the exit code
  // (0 after a clean shutdown, non-zero when start-up failed).
  int serve();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace runsync
