// The node's control plane as one object: the datapath (pinned maps, programs), the identity
// allocator, the ipcache, the policy engine, the endpoint manager, the event hub and conntrack
// GC, wired together, restored after a restart, and served on the REST API (/endpoint,
// /identity, /policy, /map, /monitor).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "agent/api/router.h"
#include "agent/datapath/datapath.h"
#include "agent/datapath/events.h"
#include "agent/datapath/maps.h"
#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "api/model/model.h"

namespace cilium::endpoint {
class Manager;
class Devices;
}
namespace cilium::monitor {
class EventHub;
}

namespace cilium::identity {
class Allocator;
class Backend;
}  // namespace cilium::identity
namespace cilium::ipcache {
class IpCache;
}
namespace cilium::node {
class Manager;
class RouteTable;
}
namespace cilium::proxy {
class Manager;
}
namespace cilium::fqdn {
class DnsProxy;
class NameManager;
}  // namespace cilium::fqdn
namespace cilium::ipcache {
class IpCache;
}
namespace cilium::policy {
class Engine;
class NamedPortTable;
class FeedTarget;
}  // namespace cilium::policy

namespace cilium::daemon {

struct ControlPlaneOptions {
  std::string pin_dir;           // bpffs directory for maps and links (created by the daemon)
  std::string procfs = "/proc";  // the host's procfs (sysctls are written under <procfs>/sys)
  std::string state_dir;         // persistent state (<state-dir>/state)
  uint32_t ct_tcp_entries = 524288;
  uint32_t ct_any_entries = 262144;
  uint32_t policy_map_entries = 16384;
  std::string monitor_aggregation = "medium";  // none | medium | ...
  std::string enable_policy = "default";       // default | always | never
  std::string router_ipv4;  // the node's address on the pod network; "" = none known
  std::string router_ipv6;  // its IPv6 twin (dual stack: the IPv6 pod CIDR's router); "" = none
  // Source of a pod's packets to itself through a Service (datapath::Config::lb_loopback_ipv4).
  std::string service_loopback_ipv4 = "169.254.42.1";
  std::string service_loopback_ipv6 = "fe80::1";  // its IPv6 twin
  bool restore = true;  // restore endpoints from state (else start empty)
  // The cluster-scope identity backend (identity-allocation-mode=crd); unset = a local file.
  std::function<Result<std::unique_ptr<identity::Backend>>()> cluster_identities;
  // Starts following the identities other nodes use (CiliumIdentity objects, already synced),
  // called once the allocator exists and before the endpoints are restored: a restored endpoint's
  // policy is regenerated with them, so it keeps admitting other nodes' pods across a restart.
  // The result keeps following them until the control plane stops.
  std::function<std::shared_ptr<void>(identity::Allocator&)> remote_identities;
  // Reserves a new endpoint's IPv4 address for its container in the node's
  // IPAM, refusing addresses outside the pod CIDR, reserved ones and those another container
  // holds. Unset (no IPAM): every endpoint with an address is refused.
  std::function<Status(const IpAddr& ip, const std::string& owner)> claim_address;
  // Whether an address is in the node's pod CIDR (endpoint::ManagerOptions::pod_address).
  std::function<bool(const IpAddr& ip)> pod_address;
  // Create cilium_host/cilium_net with the router address (needs a node namespace); also the
  // overlay device in tunnel mode.
  bool host_device = true;
  // "tunnel": cilium_vxlan on tunnel_port with bpf_overlay, pods' packets to remote pods
  // encapsulated; "native": neither (an earlier run's device is removed). The agent passes its
  // routing-mode key (default tunnel); a control plane built in-process gets no overlay unless
  // it asks for one.
  std::string routing_mode = "native";
  uint16_t tunnel_port = 8472;
  // routing-mode=native: routes to other nodes' pod CIDRs via their addresses on a shared L2
  // (node::DirectRoutes over ControlPlaneDatapath::nodeRoutes()), this node being node_name.
  bool auto_direct_node_routes = false;
  // routing-mode=tunnel: the MTU of the routes that take the node's own packets into the tunnel
  // (the pod MTU); 0: the device's.
  uint32_t tunnel_route_mtu = 0;
  std::string node_name;
  std::chrono::seconds ct_gc_interval{30};
  // L7 policy (docs/l7.md): proxy ports allocated (kept in state_dir), the datapath's redirect
  // enabled, the proxy::Manager listening on proxy_socket and, when proxy_binary is set, the
  // cilium-proxy process run (and stopped) by the agent. Off: L7 rules are refused at import.
  bool enable_l7_proxy = false;
  std::string proxy_socket;
  // The DNS proxy (in the agent, with enable_l7_proxy): Cilium's tofqdns-* keys.
  uint32_t tofqdns_min_ttl = 0;
  uint32_t tofqdns_max_ips_per_host = 1000;
  uint8_t tofqdns_reject_rcode = 5;  // REFUSED (3: NXDOMAIN)
  uint16_t tofqdns_proxy_port = 0;   // 0: the allocated cilium-dns-egress port
  uint32_t tofqdns_grace_seconds = 0;
  // The feeds that write other nodes' entries into the ipcache after the control plane has
  // started ("k8s", "kvstore"). Entries read back from the kernel after a restart stay until
  // every one of them has called ipcacheFeedSynced(), so a restarted agent keeps forwarding to
  // (and enforcing on) remote pods meanwhile. Empty: they go at the end of start().
  std::vector<std::string> ipcache_feeds;
  std::string proxy_binary;
};

// What the control plane needs of the datapath: its maps, the endpoint devices (programs,
// routes, veths), the node's own device, the event ring and the datapath's counters.
// loadKernelDatapath() gives the kernel's (the BPF programs loaded, pinned maps reused); tests
// give fakes (tests/fakes/fake_datapath.h), so the whole control plane runs without root.
class ControlPlaneDatapath {
 public:
  virtual ~ControlPlaneDatapath() = default;
  virtual datapath::Maps maps() = 0;
  virtual endpoint::Devices& devices() = 0;
  // cilium_host/cilium_net with the router address(es): IPv4, and IPv6 on a dual-stack node;
  // nothing for fakes.
  virtual Status setupHostDevice(const IpAddr& router_ipv4,
                                 const std::optional<IpAddr>& router_ipv6) = 0;
  // Whether there is an event ring to read (openEventReader works).
  virtual bool hasEvents() const = 0;
  virtual Result<std::unique_ptr<datapath::EventReader>> openEventReader(
      datapath::EventReader::Callback cb) = 0;
  virtual Result<std::vector<datapath::MetricsEntry>> readMetrics() const = 0;
  virtual Result<datapath::EventCounters> eventCounters() const = 0;
  // Redirection to the L7 proxies (Datapath::enableProxyRedirect); nothing for fakes.
  virtual Status enableProxyRedirect() = 0;
  // The node's routing table for auto-direct-node-routes; nullptr: none (fakes).
  virtual node::RouteTable* nodeRoutes() { return nullptr; }
  // cilium_host's ifindex once setupHostDevice made it; 0: none (fakes, no host device).
  virtual int hostDeviceIfindex() const { return 0; }
};

// Loads the BPF datapath as `opts` configures it (pin_dir, map sizes, monitor aggregation, the
// service loopback address); the host device follows `opts.host_device`.
Result<std::unique_ptr<ControlPlaneDatapath>> loadKernelDatapath(const ControlPlaneOptions& opts);

class ControlPlane {
 public:
  // Loads the kernel datapath, restores and registers the routes. On error, nothing is left
  // running (what is in the datapath stays).
  static Result<std::unique_ptr<ControlPlane>> start(const ControlPlaneOptions& opts,
                                                     api::Router& router);
  // The same on a given datapath (a fake one in unit tests).
  static Result<std::unique_ptr<ControlPlane>> start(const ControlPlaneOptions& opts,
                                                     api::Router& router,
                                                     std::unique_ptr<ControlPlaneDatapath> dp);
  // Stops the threads; leaves the datapath (maps, programs, links) in place.
  ~ControlPlane();

  // Fills /healthz parts (attach mode, controllers) and /debuginfo.
  void status(api::StatusResponse& s) const;
  void debugInfo(api::DebugInfo& d) const;

  endpoint::Manager& endpoints();
  monitor::EventHub& events();  // the single reader of the datapath event ring
  ControlPlaneDatapath& datapath();
  identity::Allocator& identities();
  // Fill level (0..1) of the maps whose size is cheap to know: the endpoint map, and the
  // conntrack maps as of the last GC pass (absent before the first one).
  std::vector<std::pair<std::string, double>> mapPressure() const;
  // Removes the endpoint of a container (kNotFound when there is none); for the CNI delete
  // queue, whose entries name containers.
  Status deleteContainerEndpoint(const std::string& container_id);
  policy::Engine& policy();
  // The cluster's nodes (fed by the cluster state source).
  node::Manager& nodes();
  // The L7 proxy's agent side; null with enable-l7-proxy off.
  proxy::Manager* proxyManager();
  // The DNS proxy and the FQDN cache behind it; null with enable-l7-proxy off.
  fqdn::DnsProxy* dnsProxy();
  fqdn::NameManager* fqdnNames();
  // Prefixes -> identities and tunnel endpoints (other nodes' endpoints come from the cluster
  // state source: ipcache::ClusterFeed for the API server, the kvstore feed for etcd).
  ipcache::IpCache& ipcache();
  // `feed` (one of ControlPlaneOptions::ipcache_feeds) has written everything it knows: once all
  // have, the restored ipcache entries are withdrawn. Idempotent; an unknown name is ignored.
  void ipcacheFeedSynced(const std::string& feed);
  // Named ports of the cluster's pods by identity labels, for egress rules (the Kubernetes
  // watchers fill it).
  policy::NamedPortTable& namedPorts();
  // Where the cluster state's policies go (policy::K8sFeed): the engine as Owner::kCluster,
  // serialized with every other policy change, persisted shortly after (coalesced), with the
  // affected endpoints regenerated before each call returns (bounded wait).
  policy::FeedTarget& clusterPolicy();

  struct Impl;

 private:
  explicit ControlPlane(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cilium::daemon
