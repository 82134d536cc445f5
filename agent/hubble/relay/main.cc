// hubble-relay: serves the Observer API over every node's Hubble server (agent/hubble/relay).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
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
  // SIGINT/SIGTERM, in whichever thread they land (libraries may have started threads before
  // main could block them), only wake main through a pipe; main then shuts down in order.
  static int wake[2];
  if (pipe(wake) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    char c = 1;
    (void)!write(wake[1], &c, 1);
  };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  auto pool = PeerPool::create(args->pool);
  if (!pool.ok()) return cilium::cli::usageError(std::cerr, "hubble-relay", pool.error().message());
  args->relay.version = CILIUM_VERSION;
  RelayServer server(**pool, args->relay);
  (*pool)->start();
  if (auto st = server.start(); !st.ok()) {
    std::cerr << "hubble-relay: " << st.error().message() << "\n";
    return 1;
  }
  char c;
  while (read(wake[0], &c, 1) < 0 && errno == EINTR) {
  }
  server.stop();
  (*pool)->stop();
  return 0;
}
