// cilium-agent: parses the configuration, builds the Daemon, runs until SIGTERM or SIGINT.
// Exit codes: 0 clean shutdown, 1 start failure, 2 configuration error.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "agent/common/log.h"
#include "agent/daemon/config.h"
#include "agent/daemon/control_plane_component.h"
#include "agent/daemon/daemon.h"

int main(int argc, char** argv) {
  using namespace cilium;
  // Termination signals are blocked in every thread (threads inherit the mask) and taken
  // synchronously by main below, so no handler runs in an arbitrary thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::vector<std::string> args(argv + 1, argv + argc);
  auto loaded = daemon::loadConfig(args, daemon::Environment::system());
  if (!loaded.ok()) {
    std::fprintf(stderr, "cilium-agent: %s\n", loaded.error().message().c_str());
    return 2;
  }
  if (loaded->help) {
    std::fputs(daemon::usage().c_str(), stdout);
    return 0;
  }
  if (loaded->version) {
    std::printf("cilium-agent %s\n", std::string(daemon::version()).c_str());
    return 0;
  }
  const daemon::Config& cfg = loaded->config;
  setLogLevel(cfg.effectiveLogLevel());
  auto log = logger("daemon");
  log->info("starting cilium-agent version={}", daemon::version());
  for (const auto& key : daemon::configKeys()) {
    auto src = loaded->sources.find(key.name);
    log->info("config {}={} source={}", key.name, daemon::configValueText(key, cfg),
              src == loaded->sources.end() ? "default" : daemon::sourceName(src->second));
  }

  daemon::Daemon agent(cfg);
  // Components plug in here, in dependency order. The control plane loads the datapath into
  // bpf-pin-dir, restores identities, policy and endpoints, and serves /endpoint, /identity,
  // /policy, /map and /monitor; Hubble and metrics reach it through controlPlane().
  auto control_plane = std::make_unique<daemon::ControlPlaneComponent>();
  agent.addComponent(std::move(control_plane));

  if (auto st = agent.start(); !st.ok()) {
    std::fprintf(stderr, "cilium-agent: %s\n", st.error().message().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("received signal={}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  agent.stop();
  return 0;
}
