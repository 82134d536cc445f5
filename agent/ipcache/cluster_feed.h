// The rest of the cluster in this node's ipcache (source kCustomResource), learned from the
// cluster state source: every other node's pods from their CiliumEndpoints (address -> identity,
// tunnel endpoint = the hosting node's underlay address, IPv4 for pods of both families), every
// node's addresses (remote-node, or host for this node), health endpoints (health) and, in
// tunnel mode, every other node's pod CIDRs of both families (world, through the tunnel, so a pod
// not yet known is still reached as Cilium reaches it).
//
// What is written always follows the view: a CiliumEndpoint or node deleted, changed, or gone
// after a relist (the store reports it as a deletion) takes its entries with it; a node whose
// address changes moves its endpoints' tunnel endpoint. This node's own endpoints are left to
// the endpoint manager (source kLocal). A CiliumEndpoint that cannot be used (no identity, an
// address that does not parse, no node) is left out with a warning naming it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/ipcache/ipcache.h"
#include "agent/k8s/resources.h"
#include "agent/node/node.h"

namespace cilium::k8s {
struct Stores;
}

namespace cilium::ipcache {

struct ClusterFeedOptions {
  // This node (its Node/CiliumNode name): its endpoints are skipped, its addresses are `host`.
  std::string node_name;
  // routing-mode=tunnel: remote pod CIDRs and remote nodes' CiliumInternalIPs get a tunnel
  // endpoint (their node's underlay address).
  bool tunnel = true;
};

// A CiliumEndpoint as the feed uses it; an error (kInvalidArgument naming the object) when it
// cannot be used. The node reference is status.networking.node (an IP, or a node name).
struct RemoteEndpoint {
  std::vector<IpPrefix> prefixes;
  identity::NumericIdentity identity = identity::kUnknown;
  std::string node_ref;
};
Result<RemoteEndpoint> remoteEndpointOf(const k8s::CiliumEndpoint& cep);

// A pod of another node as its CiliumEndpoint names it (Hubble shows it by name).
struct RemotePod {
  std::string namespace_name, name;
  identity::NumericIdentity identity = identity::kUnknown;
  std::string node;  // the node it runs on ("" while not resolved)
};

class ClusterFeed {
 public:
  // Subscribes to `nodes` and to the CiliumEndpoint store: everything already known is in the
  // ipcache when this returns, changes follow (on the callers' threads). `cache`, `nodes` and
  // `stores` must outlive the feed. An ipcache write that fails is logged and retried at the
  // next change of that prefix.
  static Result<std::unique_ptr<ClusterFeed>> start(IpCache& cache, node::Manager& nodes,
                                                    k8s::Stores& stores,
                                                    ClusterFeedOptions options);
  // Stops following; the entries stay (the datapath keeps forwarding).
  ~ClusterFeed();
  ClusterFeed(const ClusterFeed&) = delete;
  ClusterFeed& operator=(const ClusterFeed&) = delete;

  // How many entries the feed holds in the ipcache (for tests and status).
  size_t entries() const;
  // The usable CiliumEndpoint with this address (any node's, this node's included).
  std::optional<RemotePod> podByIp(const IpAddr& ip) const;

 private:
  struct Cep {
    RemoteEndpoint ep;
    std::string resolved_node;  // the node it runs on, once known ("" = not resolved)
  };
  using Wanted = std::vector<std::pair<IpPrefix, Info>>;

  ClusterFeed(IpCache& cache, ClusterFeedOptions options)
      : cache_(cache), opts_(std::move(options)) {}
  void onNode(const node::Node& node, bool deleted);
  void onCep(const k8s::CiliumEndpoint& cep, bool deleted);
  // Drops the address index of `key` (mu_ held).
  void unindexLocked(const std::string& key);
  // Recomputes one endpoint's entries from the nodes known now (mu_ held).
  void refreshCepLocked(const std::string& key, Cep& cep);
  Wanted nodeEntriesLocked(const node::Node& node) const;
  // Replaces what `owner` says (mu_ held) and writes the prefixes whose winner changed.
  void setOwnerLocked(const std::string& owner, Wanted wanted);
  void writeLocked(const IpPrefix& prefix);

  IpCache& cache_;
  const ClusterFeedOptions opts_;
  mutable std::mutex mu_;
  std::map<std::string, node::Node> nodes_;
  std::map<std::string, Cep> ceps_;  // "ns/name" -> usable CiliumEndpoints
  std::map<IpAddr, std::string> cep_by_ip_;  // their addresses -> "ns/name"
  // Who says what of each prefix ("node/<name>", "cep/<ns>/<name>"); the first owner wins.
  std::map<IpPrefix, std::map<std::string, Info>> claims_;
  std::map<std::string, std::vector<IpPrefix>> owned_;
  std::map<IpPrefix, Info> written_;  // what the ipcache holds from this feed
  std::vector<std::function<void()>> unregister_;
};

}  // namespace cilium::ipcache
