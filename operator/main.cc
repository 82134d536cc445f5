// cilium-operator: parses the flags, runs the Operator until SIGTERM or SIGINT.
// Exit codes: 0 clean shutdown, 1 start failure, 2 usage error.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "agent/common/cli.h"
#include "agent/common/log.h"
#include "operator/operator.h"

int main(int argc, char** argv) {
  using namespace cilium;
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto cfg = op::parseFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!cfg.ok()) return cli::usageError(std::cerr, "cilium-operator", cfg.error().message());
  if (cfg->help) {
    std::fputs(op::usage().c_str(), stdout);
    return 0;
  }
  if (cfg->version) {
    std::printf("cilium-operator %s\n", CILIUM_VERSION);
    return 0;
  }
  setLogLevel(cfg->log_level);
  auto log = logger("operator");
  if (!cfg->ignored_keys.empty())
    log->warn("ignoring {} keys of --config-dir this operator does not implement: {}",
              cfg->ignored_keys.size(), fmt::format("{}", fmt::join(cfg->ignored_keys, ",")));
  Result<k8s::ClientConfig> cc = Error(ErrorCode::kInvalidArgument, "");
  if (!cfg->k8s_kubeconfig_path.empty()) {
    cc = k8s::loadKubeconfig(cfg->k8s_kubeconfig_path);
    if (cc.ok() && !cfg->k8s_api_server.empty()) cc->server = cfg->k8s_api_server;
  } else if (!cfg->k8s_api_server.empty()) {
    cc = k8s::inClusterConfig([](const char* k) { return std::getenv(k); });
    if (!cc.ok()) cc = k8s::ClientConfig{};
    cc->server = cfg->k8s_api_server;
  } else {
    cc = k8s::inClusterConfig([](const char* k) { return std::getenv(k); });
  }
  if (!cc.ok()) {
    std::fprintf(stderr, "cilium-operator: %s\n", cc.error().message().c_str());
    return 1;
  }
  cc->qps = cfg->k8s_client_qps;
  cc->burst = cfg->k8s_client_burst;
  log->info("starting cilium-operator version={} server={} ipam={} k8s_client_qps={} burst={}",
            CILIUM_VERSION, cc->server, cfg->ipam, cc->qps, cc->burst);
  auto op = op::Operator::start(*cfg, std::move(*cc));
  if (!op.ok()) {
    std::fprintf(stderr, "cilium-operator: %s\n", op.error().message().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("received signal={}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  op->reset();
  return 0;
}
