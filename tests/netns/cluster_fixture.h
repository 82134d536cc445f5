// A cluster of real processes for netns tests: node namespaces (one Topology each) on an underlay
// bridge in a namespace of its own, which also holds the fake apiserver, the real cilium-operator
// handing out pod CIDRs, and any "outside" hosts; one real cilium-agent per node with CRD
// identities, its own pin dir, state and cgroup; pods as Pod objects attached through each
// agent's endpoint API.
//
//   node-1 ul0 172.31.<s>.1 --+
//   node-2 ul0 172.31.<s>.2 --+-- br0 172.31.<s>.254 (apiserver, operator) --+-- outside hosts
//   ...                       --+
//
// Node i's pod CIDR is 10.<200+i>.0.0/16 when its agents start in order (the operator's pool is
// 10.200.0.0/14 in /16s, and each Topology routes its own /16). Everything is removed when the
// Cluster goes, also after a failed assertion: the agents and the operator with their
// topologies first, then the apiserver, then the underlay and outside hosts.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"

namespace cilium::testing {

struct ClusterOptions {
  std::string agent_binary;
  std::string operator_binary;
  std::string dbg_binary;  // for ipcache(); may stay empty when a test does not call it
  int nodes = 3;
  int underlay_octet = 240;  // the underlay is 172.31.<underlay_octet>.0/24
  // Native routing (--routing-mode=native, the pool as native CIDR, auto-direct-node-routes)
  // instead of the VXLAN tunnel.
  bool native_routing = false;
  // Each agent serves Hubble on ClusterNode::hubbleSock(), every event (no monitor aggregation).
  bool hubble = false;
  std::vector<std::string> agent_flags;     // appended to every agent's command line
  std::vector<std::string> operator_flags;  // appended to the operator's
  std::vector<std::string> outside_hosts;   // an outside host namespace per address
  // Dual stack: the operator also hands out IPv6 pod CIDRs (kPoolCidr6 in /112s), the agents
  // run with enable-ipv6, the node namespaces have IPv6 on (forwarding inside them only), each
  // node has an IPv6 underlay address (underlayIp6) as a second InternalIP, and pods get an
  // IPv6 address too (Pod::ip6).
  bool ipv6 = false;
};

struct ClusterNode {
  std::unique_ptr<Topology> topo;
  std::optional<AgentNode> node;
  std::string name;  // node-<i+1>
  Process* agent = nullptr;
  std::vector<std::string> argv;  // the agent's command line, the same on every start
  std::string cidr;               // the pod CIDR from the operator
  std::string cidr6;              // the IPv6 pod CIDR from the operator (ClusterOptions::ipv6)
  std::string ul_mac;             // ul0's MAC

  api::Client client() const { return node->client(); }
  std::string hubbleSock() const { return node->dir() + "/run/hubble.sock"; }
  // The node namespace's name (for `ip -n`).
  std::string netnsName() const;
};

class Cluster {
  // The underlay's and outside hosts' namespaces. Declared before every other member so that it
  // is removed last: after the nodes (their topologies stop the agents and the operator and
  // delete the node namespaces) and after the apiserver.
  struct Underlay {
    std::string name;
    std::vector<std::string> hosts;
    ~Underlay();
  };
  Underlay underlay_;
  ClusterOptions options_;

 public:
  static constexpr const char* kPoolCidr = "10.200.0.0/14";
  // Node i's IPv6 pod CIDR is fd00:10:200::<i>:0/112 when its agents start in order.
  static constexpr const char* kPoolCidr6 = "fd00:10:200::/96";

  Cluster() = default;
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Builds the node namespaces, the underlay and outside hosts, starts the apiserver (with the
  // "default" Namespace) and the operator. Agents are not started. Fails the test on error
  // (check HasFatalFailure()).
  void build(ClusterOptions options);
  // addNodeObject() and startAgent() for every node in order, up to the first fatal failure.
  void startAll();
  // Creates node i's Kubernetes Node: the InternalIP other nodes reach it at.
  void addNodeObject(int i);
  // Starts node i's agent (its stderr in `log`; on a restart the same command line, so its state
  // dir and pinned maps are restored), waits until it is ready and reads its pod CIDR.
  void startAgent(int i, const std::string& log = "agent");

  // A pod on node i: its Pod object (labels app=<app>) at .0.<host> of the node's pod CIDR (and,
  // dual stack, at <host> of its IPv6 pod CIDR), its namespace and veth, eth0's MTU set to `mtu`
  // when given (as cilium-cni does), its endpoint through the agent's API (labels from the Pod).
  // Failures are non-fatal test failures.
  Pod addPod(int i, const std::string& name, const std::string& app, int host,
             std::optional<int> mtu = std::nullopt);

  // Node i's kernel ipcache (or another `bpf <table> list`) as cilium-dbg prints it with -o json:
  // prefix -> entry; empty when cilium-dbg fails.
  std::map<std::string, nlohmann::json> ipcache(int i, const std::string& table = "ipcache");

  std::string underlayIp(int i) const;
  // Node i's IPv6 underlay address (ClusterOptions::ipv6), fd00:172:31:<octet>::<i+1>.
  std::string underlayIp6(int i) const;
  std::string apiServerIp() const;
  std::string underlayNetns() const { return "/run/netns/" + underlay_.name; }
  // The /run/netns path of outside host k (in the order of ClusterOptions::outside_hosts).
  std::string outsideNetns(int k) const { return "/run/netns/" + underlay_.hosts.at(k); }

  FakeApiServer server;
  std::vector<ClusterNode> nodes;  // sized by build(), never resized after

 private:
  void buildUnderlay();
  // A veth from `ifname` (address `ip`/24) in namespace `ns` to bridge port `port`.
  void plug(const std::string& ns, const std::string& ifname, const std::string& ip,
            const std::string& port);
};

}  // namespace cilium::testing
