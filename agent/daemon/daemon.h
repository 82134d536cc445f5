// The agent's composition root: owns the modules, starts them in order, stops them in reverse.
//
// Start sequence (Daemon::start):
//   1. state directory (<state-dir>, <state-dir>/state), locked (<state-dir>/agent.lock, flock,
//      holding the pid): a second agent on the same state fails here, before it touches anything
//   2. bpffs at bpf-root and the pin directory            (DaemonOptions::manage_bpffs)
//   3. IPAM, restored from <state-dir>/state/ipam.json, when ipv4-range/ipv6-range are given
//      (otherwise a component opens it once the cluster says the node's pod CIDR: openIpam)
//   4. core API routes (/healthz, /config, /ipam, /debuginfo)
//   5. components, in the order they were added: the datapath, the policy engine, the endpoint
//      manager, Hubble and metrics plug in here (main.cc adds them); each may register API
//      routes and status/debug-info providers from its start()
//   6. 501 answers for the contract's paths no component serves (api/v1/openapi.yaml)
//   7. the API server on socket-path
//   8. the CNI configuration (write-cni-conf-when-ready), then ready: /healthz says Ok
// With DaemonOptions::serve_health_port, GET /healthz is served over plain HTTP on
// 127.0.0.1:agent-health-port from the very start (503 "starting" until ready), for a
// DaemonSet's liveness and readiness probes.
// A failing step stops everything started before it. stop() undoes the sequence in reverse:
// the API server first (no new requests, in-flight ones finish), then components, then IPAM.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/api/router.h"
#include "agent/api/server.h"
#include "agent/common/error.h"
#include "agent/common/fd.h"
#include "agent/component/component.h"
#include "agent/daemon/config.h"
#include "agent/ipam/ipam.h"
#include "agent/metrics/registry.h"
#include "agent/metrics/server.h"
#include "api/model/model.h"

namespace cilium::daemon {

// Components and what they may use of the agent are declared outside the daemon
// (agent/component/component.h), so that modules never include agent/daemon/.
using Component = component::Component;
using Host = component::Host;
using StatusProvider = component::StatusProvider;
using DebugInfoProvider = component::DebugInfoProvider;
using MapPressureProvider = component::MapPressureProvider;

struct DaemonOptions {
  // Mount bpffs at bpf-root and create bpf-pin-dir (needs root). Unit tests turn it off.
  bool manage_bpffs = true;
  api::ServerOptions server;  // socket_path is taken from the configuration
  // GET /healthz on 127.0.0.1:agent-health-port (cilium-agent turns it on; in-process tests
  // that share a network namespace leave it off, or set health_port_any for a free port).
  bool serve_health_port = false;
  bool health_port_any = false;
};

std::string_view version();

// The one component::Host: components get it in start().
class Daemon final : public component::Host {
 public:
  explicit Daemon(Config cfg, DaemonOptions opts = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Before start().
  void addComponent(std::unique_ptr<Component> component);

  // Runs once per Daemon object (a restart is a new Daemon).
  Status start();
  // Idempotent; safe to call after a failed start().
  void stop();
  bool ready() const { return ready_.load(); }

  // The configuration in force, for handlers (GET/PATCH /config) and tests; components read
  // theirs with config<T>() (component::Host).
  ConfigStore& config() { return config_; }
  using component::Host::config;

  // component::Host
  api::Router& router() override { return router_; }
  ipam::Ipam* ipam() override { return ipam_.get(); }
  Status openIpam(std::optional<IpPrefix> ipv4, std::optional<IpPrefix> ipv6) override;
  void addStatusProvider(StatusProvider provider) override;
  void addDebugInfoProvider(DebugInfoProvider provider) override;
  void addMapPressureProvider(MapPressureProvider provider) override;
  std::vector<std::pair<std::string, double>> mapPressure() const override;

  api::StatusResponse status() const;
  // What GET /healthz on agent-health-port answers: 200 "ok" once ready with no failing
  // subsystem, 503 naming the failing part ("cilium: starting", "cilium: kubernetes: ...").
  std::pair<int, std::string> healthProbe() const;
  // The port GET /healthz is served on (the chosen one with health_port_any); 0 when off.
  int healthPort() const;
  api::DebugInfo debugInfo() const;
  api::DaemonConfiguration configuration() const;

 protected:
  void copyConfig(const std::type_info& part, void* out) const override;

 private:
  Status registerCoreRoutes();
  Status registerReservedRoutes();
  Status startIpam(const Config& cfg);
  Status lockStateDir(const std::string& state_dir);
  void coreStatus(api::StatusResponse& s) const;

  ConfigStore config_;
  DaemonOptions opts_;
  api::Router router_;
  std::unique_ptr<api::Server> server_;
  // <state-dir>/agent.lock, held (flock) from the first step of start() until stop(): a second
  // agent on the same state is refused before it touches the datapath.
  UniqueFd lock_;
  metrics::Registry health_registry_;  // empty: the health port serves only /healthz
  std::unique_ptr<metrics::MetricsServer> health_server_;
  std::unique_ptr<ipam::Ipam> ipam_;
  std::vector<std::unique_ptr<Component>> components_;
  size_t started_components_ = 0;
  mutable std::mutex providers_mu_;
  std::vector<StatusProvider> status_providers_;
  std::vector<DebugInfoProvider> debug_providers_;
  std::vector<MapPressureProvider> pressure_providers_;
  std::atomic<bool> ready_{false};
  bool started_ = false;
  bool ran_ = false;
};

// The (method, path template) pairs of api/v1/openapi.yaml. Daemon::start answers 501 on the
// ones no module registered, naming the module that will serve them.
struct ContractRoute {
  api::Method method;
  std::string_view path;
  std::string_view served_by;  // the module that implements it
};
const std::vector<ContractRoute>& contractRoutes();

// Writes the CNI network configuration (write-cni-conf-when-ready) atomically, and with
// cni-exclusive renames the other configurations in that directory to *.cilium_bak.
Status writeCniConfig(const Config& cfg);

}  // namespace cilium::daemon
