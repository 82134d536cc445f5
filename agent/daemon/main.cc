// cilium-agent: parses the configuration, builds the Daemon, runs until SIGTERM or SIGINT.
// Exit codes: 0 clean shutdown, 1 start failure, 2 configuration error.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "agent/common/cli.h"
#include "agent/common/log.h"
#include "agent/daemon/config.h"
#include "agent/daemon/control_plane.h"
#include "agent/daemon/control_plane_component.h"
#include "agent/daemon/daemon.h"
#include "agent/daemon/k8s_component.h"
#include "agent/daemon/kvstore_component.h"
#include "agent/daemon/node_component.h"
#include "agent/daemon/observability.h"
#include "agent/health/component.h"
#include "agent/hubble/component.h"
#include "agent/node/node.h"
#include "agent/metrics/component.h"
#include "agent/metrics/registry.h"
#include "agent/service/component.h"

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
  if (!loaded.ok()) return cli::usageError(std::cerr, "cilium-agent", loaded.error().message());
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
  if (!cfg.ignored_options.empty()) {
    std::string keys;
    for (const auto& [k, v] : cfg.ignored_options) keys += (keys.empty() ? "" : ",") + k;
    log->warn(
        "ignoring {} configuration keys this agent does not implement (listed by "
        "cilium-dbg config): {}",
        cfg.ignored_options.size(), keys);
  }

  // Declared before the Daemon: the components that feed and serve them go first.
  metrics::Registry agent_registry;
  metrics::Registry hubble_registry;
  daemon::DaemonOptions daemon_opts;
  daemon_opts.serve_health_port = true;  // agent-health-port: the DaemonSet's probes
  daemon::Daemon agent(cfg, daemon_opts);
  // Components start in this order and stop in reverse. The cluster state source (API server or
  // manifests directory) syncs first. The control plane loads the datapath into bpf-pin-dir,
  // restores identities, policy and endpoints, and serves /endpoint, /identity, /policy, /map
  // and /monitor. Observability connects its event hub and state to Hubble and to the metrics
  // registries, which the metrics components then serve. The k8s component then applies the
  // source's policies, pod labels and Services.
  auto k8s_source = std::make_unique<daemon::K8sSourceComponent>();
  // With the API server: this node's CiliumNode, and its pod CIDR from the cluster (IPAM).
  auto node = std::make_unique<daemon::NodeComponent>(*k8s_source);
  // kvstore=etcd: the etcd client, lease and identities, before the allocator needs them.
  auto kvstore = std::make_unique<daemon::KvstoreComponent>();
  auto control_plane = std::make_unique<daemon::ControlPlaneComponent>(k8s_source.get());
  control_plane->setKvstore(kvstore.get());
  daemon::ControlPlaneComponent* cp_raw = control_plane.get();
  auto observability =
      std::make_unique<daemon::ObservabilityComponent>(*control_plane, agent_registry);
  auto hubble_opts = hubble::componentOptions(cfg, cfg.node_name,
                                              std::string(daemon::version()), cfg.cluster_name);
  // The Peer service lists every node the agent knows (hubble-relay discovers them through it).
  // Hubble stops before the control plane, so the node manager outlives the lister's callers.
  hubble_opts.server.cluster_nodes = [cp = control_plane.get()] {
    std::vector<hubble::PeerNode> out;
    if (cp->controlPlane() == nullptr) return out;
    for (const auto& n : cp->controlPlane()->nodes().list())
      out.push_back({n.name, n.primaryAddress()});
    return out;
  };
  hubble_opts.pipeline.names = observability->nameResolver();
  auto hubble = std::make_unique<hubble::HubbleComponent>(
      std::move(hubble_opts), observability->endpointResolver(),
      observability->identityResolver(), &hubble_registry);
  if (cfg.enable_hubble) observability->setFlowPipeline(&hubble->pipeline());
  service::ComponentOptions service_opts;
  // enable-ipv6 off: IPv6 frontends of Services are skipped with a log line, not errors.
  service_opts.manager.enable_ipv6 = cfg.enable_ipv6;
  service_opts.enable_ipv6 = cfg.enable_ipv6;
  auto services = std::make_unique<service::ServiceComponent>(std::move(service_opts));
  // Flows name the Service of a frontend address (started before Hubble, which polls it).
  hubble->setServiceSource([svc = services.get()] {
    std::vector<hubble::ServiceFrontend> out;
    if (svc->manager() == nullptr) return out;
    for (const auto& lb : svc->manager()->list()) {
      if (lb.owner.name.empty()) continue;
      out.push_back({lb.frontend.ip, lb.frontend.port, static_cast<uint8_t>(lb.frontend.proto),
                     {lb.owner.name, lb.owner.ns}});
    }
    return out;
  });
  auto k8s = std::make_unique<daemon::K8sComponent>(*k8s_source, *control_plane, services.get(),
                                                    observability.get());
  // Other nodes and their endpoints and identities from etcd; this node's published there.
  auto kvstore_feed = std::make_unique<daemon::KvstoreFeedComponent>(*kvstore, *control_plane);
  agent.addComponent(std::move(k8s_source));
  agent.addComponent(std::move(node));
  agent.addComponent(std::move(kvstore));
  agent.addComponent(std::move(control_plane));
  agent.addComponent(std::move(observability));
  agent.addComponent(std::move(services));
  agent.addComponent(std::move(hubble));
  agent.addComponent(std::move(k8s));
  agent.addComponent(std::move(kvstore_feed));
  // Cluster connectivity health: the health endpoint, probes of every node, /v1/health/status.
  health::ComponentDeps health_deps;
  health_deps.endpoints = [cp = cp_raw]() -> endpoint::Manager* {
    return cp->controlPlane() != nullptr ? &cp->controlPlane()->endpoints() : nullptr;
  };
  health_deps.nodes = [cp = cp_raw] {
    return cp->controlPlane() != nullptr ? cp->controlPlane()->nodes().list()
                                         : std::vector<node::Node>{};
  };
  health_deps.registry = &agent_registry;
  agent.addComponent(std::make_unique<health::HealthComponent>(std::move(health_deps)));
  agent.addComponent(std::make_unique<metrics::MetricsComponent>(agent_registry));
  agent.addComponent(std::make_unique<metrics::MetricsComponent>(
      hubble_registry, &hubble::Config::hubble_metrics_server, "hubble-metrics"));

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
