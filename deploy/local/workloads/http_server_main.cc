// cilium-http-server: the demo's pod workload, an HTTP/1.1 server whose routes come from the
// command line. Runs until SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "deploy/local/workloads/http.h"

namespace {

std::atomic<bool> g_stop{false};

constexpr char kUsage[] =
    "Usage: cilium-http-server --listen HOST:PORT --route 'METHOD /path=STATUS:BODY'...\n"
    "  e.g. --listen 0.0.0.0:80 --route 'POST /v1/request-landing=200:Ship landed'\n"
    "  Unknown paths answer 404, a known path with another method 405.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace cilium;
  std::optional<local::ListenAddress> listen;
  std::vector<local::Route> routes;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    auto take = [&](const std::string& flag) {
      if (arg == flag && i + 1 < argc) {
        value = argv[++i];
        return true;
      }
      if (arg.rfind(flag + "=", 0) == 0) {
        value = arg.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (take("--listen")) {
      auto a = local::parseListenAddress(value);
      if (!a.ok()) {
        std::fprintf(stderr, "cilium-http-server: %s\n", a.error().message().c_str());
        return 2;
      }
      listen = *a;
    } else if (take("--route")) {
      auto r = local::parseRoute(value);
      if (!r.ok()) {
        std::fprintf(stderr, "cilium-http-server: %s\n", r.error().message().c_str());
        return 2;
      }
      routes.push_back(std::move(*r));
    } else {
      std::fprintf(stderr, "cilium-http-server: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (!listen) {
    std::fprintf(stderr, "cilium-http-server: --listen is required\n%s", kUsage);
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = true; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto server = local::HttpServer::listen(*listen, routes);
  if (!server.ok()) {
    std::fprintf(stderr, "cilium-http-server: %s\n", server.error().toString().c_str());
    return 1;
  }
  const bool v6 = listen->host.find(':') != std::string::npos;
  std::printf("listening on %s%s%s:%u with %zu route(s)\n", v6 ? "[" : "", listen->host.c_str(),
              v6 ? "]" : "", server->port(),
              routes.size());
  std::fflush(stdout);
  auto st = server->serve(g_stop);
  if (!st.ok()) {
    std::fprintf(stderr, "cilium-http-server: %s\n", st.error().toString().c_str());
    return 1;
  }
  return 0;
}
