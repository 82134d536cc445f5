// hubble-ui: Hubble's service map and flow table in a browser, over a Hubble server or relay.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>

#include "agent/common/cli.h"
#include "agent/hubble/cli/cli.h"
#include "agent/hubble/ui/server.h"

int main(int argc, char** argv) {
  using namespace cilium::hubble;
  auto app = cilium::cli::makeApp(
      "Hubble UI: the service map and flows of a Hubble server or hubble-relay in a browser.",
      "hubble-ui");
  std::string server = "127.0.0.1:4245", listen = "127.0.0.1:12000";
  uint64_t max_flows = 2000;
  cli::TlsArgs tls;
  app->add_option("--server", server, "Hubble server or relay (unix:///path, host:port, tls://)")
      ->default_str(server);
  app->add_option("--listen-address", listen, "Where the page is served (host:port)")
      ->default_str(listen);
  app->add_option("--max-flows", max_flows, "Flows read per refresh")->default_str("2000");
  app->add_flag("--tls", tls.enabled, "Use TLS to the server");
  app->add_option("--tls-ca-cert-files", tls.ca_files, "CAs of the server's certificate (PEM)");
  app->add_option("--tls-client-cert-file", tls.cert_file, "Client certificate (PEM)");
  app->add_option("--tls-client-key-file", tls.key_file, "Key of the client certificate (PEM)");
  app->add_option("--tls-server-name", tls.server_name, "Name the server's certificate carries");
  std::vector<std::string> args(argv + 1, argv + argc);
  auto outcome = cilium::cli::parse(*app, args);
  if (!outcome.ok())
    return cilium::cli::usageError(std::cerr, "hubble-ui", outcome.error().message());
  if (*outcome == cilium::cli::Outcome::kHelp) {
    std::cout << cilium::cli::help(*app);
    return 0;
  }
  if (server.starts_with("tls://")) tls.enabled = true;
  if (!tls.enabled && (!tls.ca_files.empty() || !tls.cert_file.empty() || !tls.server_name.empty()))
    return cilium::cli::usageError(std::cerr, "hubble-ui", "--tls-* options need --tls");
  if (max_flows == 0 || max_flows > 100000)
    return cilium::cli::usageError(std::cerr, "hubble-ui", "--max-flows: must be 1..100000");
  auto channel = cli::dial(server, tls);
  if (!channel.ok())
    return cilium::cli::usageError(std::cerr, "hubble-ui", channel.error().message());

  static int wake[2];
  if (pipe(wake) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    char c = 1;
    (void)!write(wake[1], &c, 1);
  };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  ui::UiServer ui(*channel, {listen, max_flows, std::chrono::seconds(5)});
  if (auto st = ui.start(); !st.ok()) {
    std::cerr << "hubble-ui: " << st.error().message() << "\n";
    return 1;
  }
  char c;
  while (read(wake[0], &c, 1) < 0 && errno == EINTR) {
  }
  ui.stop();
  return 0;
}
