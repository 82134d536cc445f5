// Hubble's Peer service (peer.Peer/Notify): the Hubble servers of the cluster, as Hubble Relay
// discovers them. Notify sends PEER_ADDED for every server the source knows, then polls the
// source and sends PEER_ADDED / PEER_UPDATED / PEER_DELETED for what changed, until the client
// leaves or the server stops.
//
// The source is an interface: the agent's own server only (LocalPeerSource), or every node of
// the cluster as the agent knows them (ClusterPeerSource, fed by the node manager).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/common/inet.h"

#include "agent/hubble/proto.h"

namespace cilium::hubble {

struct PeerInfo {
  std::string name;             // "node", or "cluster/node" outside the default cluster
  std::string address;          // host:port of its Hubble server
  std::string tls_server_name;  // "" = no TLS
  bool operator==(const PeerInfo&) const = default;
};

class PeerSource {
 public:
  virtual ~PeerSource() = default;
  // Every known Hubble server now. Called from gRPC threads; must be thread-safe and cheap.
  virtual std::vector<PeerInfo> peers() const = 0;
};

// This node's server only.
class LocalPeerSource : public PeerSource {
 public:
  explicit LocalPeerSource(PeerInfo self) : self_(std::move(self)) {}
  std::vector<PeerInfo> peers() const override { return {self_}; }

 private:
  PeerInfo self_;
};

// A node of the cluster as the peer source needs it: its name and the address other nodes reach
// it on (nullopt: not known yet).
struct PeerNode {
  std::string name;
  std::optional<IpAddr> address;
};

// Every node's Hubble server: "<node address>:<port>" (the port this node listens on: Cilium
// runs the same hubble-listen-address everywhere), with Cilium's TLS server name per node when
// TLS is on. A node without an address yet is left out. This node is `self` (its configured
// peer address wins), and is listed even before the node list holds it.
class ClusterPeerSource : public PeerSource {
 public:
  using Lister = std::function<std::vector<PeerNode>()>;
  // `lister` is called from gRPC threads (once per poll and stream) and must be thread-safe.
  // `self_address_fixed`: self.address was configured (hubble peer address) and is kept.
  ClusterPeerSource(Lister lister, PeerInfo self, std::string self_node, bool self_address_fixed,
                    int port, std::string cluster, bool tls)
      : lister_(std::move(lister)),
        self_(std::move(self)),
        self_node_(std::move(self_node)),
        self_address_fixed_(self_address_fixed),
        port_(port),
        cluster_(std::move(cluster)),
        tls_(tls) {}
  std::vector<PeerInfo> peers() const override;
  // The port, once known (a listener on port 0 learns its port when it starts).
  void setPort(int port) { port_ = port; }

 private:
  Lister lister_;
  PeerInfo self_;
  std::string self_node_;
  bool self_address_fixed_;
  std::atomic<int> port_;
  std::string cluster_;
  bool tls_;
};

class PeerService final : public peer::Peer::Service {
 public:
  // `source` must outlive the service. `poll` is how often the source is asked for changes.
  explicit PeerService(const PeerSource& source,
                       std::chrono::milliseconds poll = std::chrono::seconds(1))
      : source_(source), poll_(poll) {}
  // Ends the Notify streams (server shutdown).
  void shutdown() { stopping_ = true; }

  grpc::Status Notify(grpc::ServerContext* ctx, const peer::NotifyRequest* req,
                      grpc::ServerWriter<peer::ChangeNotification>* writer) override;

 private:
  const PeerSource& source_;
  std::chrono::milliseconds poll_;
  std::atomic<bool> stopping_{false};
};

// Cilium's TLS server name for a node's Hubble server: "<node>.<cluster>.hubble-grpc.cilium.io",
// dots in the node name turned into dashes.
std::string hubbleTlsServerName(std::string_view cluster, std::string_view node);

}  // namespace cilium::hubble
