// hubble-relay: serves the Observer API over every node's Hubble server (agent/hubble/relay).
#include <signal.h>

#include <iostream>

#include "agent/common/cli.h"
#include "agent/hubble/relay/options.h"

int main(int argc, char** argv) {
  using namespace cilium::hubble::relay;
  auto args = parseArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!args.ok()) return cilium::cli::usageError(std::cerr, "hubble-relay", args.error().message());
  if (args->help) {
    std::cout << args->help_text;
    return 0;
  }
  // Signals are taken by sigwait below, not by a handler in whichever thread gRPC runs.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto pool = PeerPool::create(args->pool);
  if (!pool.ok()) return cilium::cli::usageError(std::cerr, "hubble-relay", pool.error().message());
  args->relay.version = CILIUM_VERSION;
  RelayServer server(**pool, args->relay);
  (*pool)->start();
  if (auto st = server.start(); !st.ok()) {
    std::cerr << "hubble-relay: " << st.error().message() << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  (*pool)->stop();
  return 0;
}
