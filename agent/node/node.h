// The cluster's nodes as this agent knows them: each node's addresses and pod CIDRs, merged from
// the Kubernetes Node and Cilium's CiliumNode of the same name, kept current and told to
// observers (the multi-node datapath and cilium-dbg node list read them from here).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace cilium::node {

enum class AddressType : uint8_t { kInternalIp, kExternalIp, kCiliumInternalIp };
std::string_view addressTypeName(AddressType t);  // "InternalIP", "ExternalIP", "CiliumInternalIP"
// The reverse; nullopt for any other text.
std::optional<AddressType> parseAddressType(std::string_view name);

struct Address {
  AddressType type = AddressType::kInternalIp;
  IpAddr ip;
  bool operator==(const Address&) const = default;
};

struct Node {
  std::string name;
  std::vector<Address> addresses;   // Node's, then CiliumNode's, without duplicates
  std::vector<IpPrefix> pod_cidrs;  // CiliumNode's spec.ipam.podCIDRs, else Node's spec.podCIDRs
  std::vector<IpAddr> health;       // CiliumNode's spec.health: the health endpoint's addresses
  std::string boot_id;              // CiliumNode's spec.bootid
  bool from_node = false;           // a Kubernetes Node object exists
  bool from_cilium_node = false;    // a CiliumNode object exists
  bool from_kvstore = false;        // a node key in etcd exists (kvstore mode)

  // The address other nodes reach it on (Cilium's node IP: the tunnel endpoint, the Hubble
  // peer): InternalIP, else ExternalIP, else CiliumInternalIP (the router address on cilium_host,
  // only for a node that published nothing else).
  std::optional<IpAddr> primaryAddress(IpFamily family = IpFamily::kV4) const;
  // The address on the underlay, what VXLAN packets for its pods go to: InternalIP, else
  // ExternalIP (never CiliumInternalIP, which lives on the pod network behind the tunnel).
  std::optional<IpAddr> tunnelAddress(IpFamily family = IpFamily::kV4) const;
  // The VXLAN tunnel endpoint for its pods of either family: the IPv4 underlay address (IPv6
  // inner over an IPv4 underlay, as Cilium does in dual-stack clusters), else the IPv6 one (an
  // IPv6-only underlay, which the datapath does not encapsulate to).
  std::optional<IpAddr> tunnelEndpoint() const;
  bool hasAddress(const IpAddr& ip) const;
  bool operator==(const Node&) const = default;
};

class Manager {
 public:
  using Observer = std::function<void(const Node& node, bool deleted)>;

  // Replaces what one source says of a node (a Node or a CiliumNode); nullopt: that object is
  // gone. The node is deleted once no source has it. Observers hear each resulting change.
  void updateFromNode(const std::string& name, std::optional<Node> from_node);
  void updateFromCiliumNode(const std::string& name, std::optional<Node> from_cilium_node);
  // What etcd's cilium/state/nodes/v1/<cluster>/<name> key says (kvstore mode); it counts as a
  // CiliumNode for pod CIDRs, health address and boot id when no CiliumNode exists.
  void updateFromKvstore(const std::string& name, std::optional<Node> from_kvstore);

  std::optional<Node> get(const std::string& name) const;
  std::vector<Node> list() const;
  // Observers are called without the manager's lock, first with every node already known.
  uint64_t subscribe(Observer observer);
  void unsubscribe(uint64_t id);

 private:
  struct Parts {
    std::optional<Node> node, cilium_node, kvstore;
  };
  static std::optional<Node> merge(const std::string& name, const Parts& parts);
  void update(const std::string& name, const std::function<void(Parts&)>& change);

  mutable std::mutex mu_;
  std::map<std::string, Parts> parts_;
  std::map<std::string, Node> nodes_;
  std::mutex observers_mu_;  // held while observers run, so unsubscribe() waits for them
  std::map<uint64_t, Observer> observers_;
  uint64_t next_id_ = 1;
};

}  // namespace cilium::node
