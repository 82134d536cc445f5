// A part of the agent with a lifecycle (Component) and what it may use of the agent while it
// starts (Host): the REST router, IPAM, /healthz, /debuginfo and map-pressure providers, and
// the configuration. daemon::Daemon is the one Host; modules include this header, never the
// daemon's.
//
// Configuration: each module declares its keys over a struct of its own (config::Registry<T>,
// agent/config/config.h); the agent composes every module's struct into its configuration, and
// a component reads its module's part with host.config<T>() (a copy of the values in force).
// The keys every module may read, paths and the node's identity, are NodeConfig below.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include "agent/api/router.h"
#include "agent/common/error.h"
#include "agent/config/config.h"
#include "agent/ipam/ipam.h"
#include "api/model/model.h"

namespace cilium::component {

// Fills its part of GET /healthz; runs on every request, so it must be cheap and non-blocking.
using StatusProvider = std::function<void(api::StatusResponse&)>;
// Adds to GET /debuginfo (subsystem reports, endpoint list, policy).
using DebugInfoProvider = std::function<void(api::DebugInfo&)>;
// Adds the fill ratios (0..1) of the BPF maps a component owns, by map name, for
// cilium_bpf_map_pressure; runs on every scrape, so it must be cheap (a count kept by a GC, not a
// map walk).
using MapPressureProvider = std::function<void(std::vector<std::pair<std::string, double>>&)>;

// Paths and the node's identity: the keys every module may read (state-dir, bpf-root,
// bpf-pin-dir, cgroup-root, procfs, socket-path, node-name, cluster-name, cluster-id).
struct NodeConfig {
  std::string state_dir =
      "/var/run/cilium";  // runtime state; persistent state in <state-dir>/state
  std::string bpf_root = "/sys/fs/bpf";
  std::string bpf_pin_dir;  // empty in the table = <bpf-root>/cilium (resolved by the loader)
  std::string cgroup_root = "/run/cilium/cgroupv2";
  // The host's procfs, where sysctls are written (<procfs>/sys/...): /proc, or in an unprivileged
  // container the host's /proc mounted elsewhere (Cilium's --procfs=/host/proc), since runtimes
  // mount the container's own /proc/sys read-only.
  std::string procfs = "/proc";
  std::string socket_path = "/var/run/cilium/cilium.sock";
  std::string node_name;  // empty in the table = $K8S_NODE_NAME, else the hostname
  std::string cluster_name = "default";
  uint32_t cluster_id = 0;

  // <state-dir>/state/<name>: where modules keep what must survive a restart.
  std::string stateFile(std::string_view name) const;
  std::string persistentStateDir() const { return state_dir + "/state"; }
  // <procfs>/sys/<key>, key as a path ("net/ipv4/conf/lo/accept_local").
  std::string sysctlPath(std::string_view key) const;
};
const config::Registry<NodeConfig>& nodeConfigKeys();

class Host {
 public:
  virtual ~Host() = default;

  virtual api::Router& router() = 0;
  // nullptr while no pod CIDR is known (ipv4-range and ipv6-range "auto").
  virtual ipam::Ipam* ipam() = 0;
  // Opens IPAM on pod CIDRs a component learned from the cluster (ipv4-range "auto": the node
  // component with ipam=cluster-pool or kubernetes), restoring allocations from the state file.
  // kFailedPrecondition when IPAM is open already.
  virtual Status openIpam(std::optional<IpPrefix> ipv4, std::optional<IpPrefix> ipv6) = 0;
  virtual void addStatusProvider(StatusProvider provider) = 0;
  virtual void addDebugInfoProvider(DebugInfoProvider provider) = 0;
  virtual void addMapPressureProvider(MapPressureProvider provider) = 0;
  // What every map-pressure provider reports now.
  virtual std::vector<std::pair<std::string, double>> mapPressure() const = 0;

  // The part T of the configuration in force (NodeConfig, hubble::Config, ...): a copy. T must
  // be a part the agent composes; anything else is a bug (abort).
  template <class T>
  T config() const {
    T out{};
    copyConfig(typeid(T), &out);
    return out;
  }

 protected:
  // Copies the part whose type is `part` into `out`, which points at a value of that type.
  virtual void copyConfig(const std::type_info& part, void* out) const = 0;
};

class Component {
 public:
  virtual ~Component() = default;
  virtual std::string_view name() const = 0;
  // Runs once, in the order components were added, before the API server listens. May
  // register routes, status and debug-info providers.
  virtual Status start(Host& host) = 0;
  // Runs in reverse order after the API server has stopped. Must not fail.
  virtual void stop() {}
};

}  // namespace cilium::component
