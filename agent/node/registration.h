// This node's own CiliumNode (CRD mode): the agent creates it, keeps it as it wants it (its
// addresses, health endpoint address, boot id, and the pod CIDRs when the agent owns them), and
// learns its pod CIDR from it (ipam=cluster-pool, written by cilium-operator) or from its
// Kubernetes Node (ipam=kubernetes). Other nodes are learned through the node feed
// (k8s_feed.h); this class writes only its own object, and never spec.ipam.podCIDRs in
// cluster-pool mode (the operator's field). See docs/cluster.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/k8s/client.h"
#include "agent/k8s/source.h"

namespace cilium::node {

struct RegistrationConfig {
  std::string node_name;
  std::string ipam = "cluster-pool";  // cluster-pool | kubernetes
  // ipv4-range / ipv6-range when given: the node's fixed ranges, published as its pod CIDRs.
  std::optional<IpPrefix> fixed_ipv4;
  std::optional<IpPrefix> fixed_ipv6;
  // The node's InternalIP; empty = the Kubernetes Node's InternalIP, else the first global IPv4
  // address of this network namespace's interfaces.
  std::vector<IpAddr> internal_ips;
  std::string boot_id;  // "" = /proc/sys/kernel/random/boot_id
  std::chrono::milliseconds retry_min{200};
  std::chrono::milliseconds retry_max{10000};
};

// The addresses known once IPAM runs.
struct LocalAddresses {
  std::optional<IpAddr> router_ipv4;  // CiliumInternalIP: the router address in the pod CIDR
  std::optional<IpAddr> health_ipv4;  // the health endpoint's address
  std::optional<IpPrefix> pod_cidr_ipv4;
  // Dual stack: the IPv6 router address (a second CiliumInternalIP, also on cilium_host), the
  // health endpoint's IPv6 address and the IPv6 pod CIDR.
  std::optional<IpAddr> router_ipv6;
  std::optional<IpAddr> health_ipv6;
  std::optional<IpPrefix> pod_cidr_ipv6;
};

class Registration {
 public:
  // Creates (or updates) this node's CiliumNode and keeps it: a CiliumNode deleted or changed by
  // someone else is written back (retried with backoff while the API server fails). `client`
  // and `stores` (Nodes and CiliumNodes served and synced) must outlive it.
  static Result<std::unique_ptr<Registration>> start(k8s::Client& client, k8s::Stores& stores,
                                                     RegistrationConfig config);
  ~Registration();  // stops keeping it; the object stays (the operator's node GC removes it)
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // The node's pod CIDR of `family`: the fixed range; else, as `ipam` says, the first CIDR of
  // that family in its CiliumNode's spec.ipam.podCIDRs (cluster-pool) or its Node's
  // spec.podCIDRs (kubernetes), waiting for it with a log line every `log_every` that says what
  // is missing (and the operator's error from the CiliumNode's status, if any).
  // kDeadlineExceeded after `timeout`.
  Result<IpPrefix> waitForPodCidr(std::chrono::milliseconds timeout,
                                  std::chrono::milliseconds log_every = std::chrono::seconds(5),
                                  IpFamily family = IpFamily::kV4);
  // Publishes the addresses IPAM gave (CiliumInternalIP, health) and, when the agent owns it,
  // the pod CIDR. Returns once written or the first write failed (it is then retried).
  Status setAddresses(const LocalAddresses& addresses);

  // What is published (for tests and cilium-dbg).
  k8s::CiliumNode desired() const;

 private:
  Registration(k8s::Client& client, k8s::Stores& stores, RegistrationConfig config)
      : client_(client), stores_(stores), config_(std::move(config)) {}
  // Writes the desired state: create when absent, else a merge patch of the fields it owns.
  Status write();
  bool inSync(const k8s::CiliumNode& current) const;
  // Whether the agent writes the pod CIDR `cidr`'s family (a fixed range of that family, or
  // ipam=kubernetes); the operator writes the others.
  bool ownsFamily(const std::string& cidr) const;
  // The spec.ipam.podCIDRs to publish: the owned families from `desired`, the others from
  // `current` (the object as it is), IPv4 first.
  std::vector<std::string> podCidrsToWrite(const std::vector<std::string>& desired,
                                           const std::vector<std::string>& current) const;
  void kick();
  void run();

  k8s::Client& client_;
  k8s::Stores& stores_;
  RegistrationConfig config_;
  mutable std::mutex mu_;
  k8s::CiliumNode desired_;
  bool owns_pod_cidrs_ = false;
  // ipam=kubernetes: the CIDRs learned from the Node, by family (published in that order).
  std::optional<IpPrefix> learned_v4_, learned_v6_;
  std::condition_variable cv_;
  bool dirty_ = false;
  bool stopping_ = false;
  std::thread thread_;
  k8s::Store<k8s::CiliumNode>::HandlerId handlers_ = 0;
  bool registered_ = false;
};

// The first global address of `family` of this network namespace's interfaces (not loopback,
// not link-local, not on a cilium_ device); nullopt when there is none.
std::optional<IpAddr> firstGlobalAddress(IpFamily family);
// /proc/sys/kernel/random/boot_id, "" when unreadable.
std::string readBootId();

}  // namespace cilium::node
