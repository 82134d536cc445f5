// Hubble's Peer service (peer.Peer/Notify): the Hubble servers of the cluster, as Hubble Relay
// discovers them. Notify sends PEER_ADDED for every server the source knows, then polls the
// source and sends PEER_ADDED / PEER_UPDATED / PEER_DELETED for what changed, until the client
// leaves or the server stops.
//
// The source is an interface: today the agent's own server only (LocalPeerSource); a cluster
// source (CiliumNodes, the kvstore) plugs in later without touching the service.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

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
