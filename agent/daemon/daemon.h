// The agent's composition root: owns the modules, starts them in order, stops them in reverse.
//
// Start sequence (Daemon::start):
//   1. state directory (<state-dir>, <state-dir>/state)
//   2. bpffs at bpf-root and the pin directory            (DaemonOptions::manage_bpffs)
//   3. IPAM, restored from <state-dir>/state/ipam.json
//   4. core API routes (/healthz, /config, /ipam, /debuginfo)
//   5. components, in the order they were added: the datapath, the policy engine, the endpoint
//      manager, Hubble and metrics plug in here (main.cc adds them); each may register API
//      routes and status/debug-info providers from its start()
//   6. 501 answers for the contract's paths no component serves (api/v1/openapi.yaml)
//   7. the API server on socket-path
//   8. the CNI configuration (write-cni-conf-when-ready), then ready: /healthz says Ok
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
#include "agent/daemon/config.h"
#include "agent/ipam/ipam.h"
#include "api/model/model.h"

namespace cilium::daemon {

class Daemon;

// A part of the agent with a lifecycle: the extension point for every later module.
class Component {
 public:
  virtual ~Component() = default;
  virtual std::string_view name() const = 0;
  // Runs once, in the order components were added, before the API server listens. May
  // register routes (daemon.router()), status and debug-info providers, and config listeners.
  virtual Status start(Daemon& daemon) = 0;
  // Runs in reverse order after the API server has stopped. Must not fail.
  virtual void stop() {}
};

// Fills its part of GET /healthz; runs on every request, so it must be cheap and non-blocking.
using StatusProvider = std::function<void(api::StatusResponse&)>;
// Adds to GET /debuginfo (subsystem reports, endpoint list, policy).
using DebugInfoProvider = std::function<void(api::DebugInfo&)>;
// Adds the fill ratios (0..1) of the BPF maps a component owns, by map name, for
// cilium_bpf_map_pressure; runs on every scrape, so it must be cheap (a count kept by a GC, not a
// map walk).
using MapPressureProvider = std::function<void(std::vector<std::pair<std::string, double>>&)>;

struct DaemonOptions {
  // Mount bpffs at bpf-root and create bpf-pin-dir (needs root). Unit tests turn it off.
  bool manage_bpffs = true;
  api::ServerOptions server;  // socket_path is taken from the configuration
};

std::string_view version();

class Daemon {
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

  // For components and handlers.
  ConfigStore& config() { return config_; }
  api::Router& router() { return router_; }
  // nullptr while no pod CIDR is known (ipv4-range and ipv6-range "auto").
  ipam::Ipam* ipam() { return ipam_.get(); }
  void addStatusProvider(StatusProvider provider);
  void addDebugInfoProvider(DebugInfoProvider provider);
  void addMapPressureProvider(MapPressureProvider provider);

  api::StatusResponse status() const;
  api::DebugInfo debugInfo() const;
  std::vector<std::pair<std::string, double>> mapPressure() const;
  api::DaemonConfiguration configuration() const;

 private:
  Status registerCoreRoutes();
  Status registerReservedRoutes();
  Status startIpam(const Config& cfg);
  void coreStatus(api::StatusResponse& s) const;

  ConfigStore config_;
  DaemonOptions opts_;
  api::Router router_;
  std::unique_ptr<api::Server> server_;
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
