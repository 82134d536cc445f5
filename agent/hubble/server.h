// The Hubble gRPC server over a FlowPipeline, on a Unix socket and/or TCP (with TLS and client
// certificates as Cilium configures them), wire-compatible with Hubble clients:
//   observer.Observer  GetFlows, GetAgentEvents, GetDebugEvents, GetNodes, GetNamespaces,
//                      ServerStatus
//   peer.Peer          Notify (this node's server; agent/hubble/peer.h)
//
// GetFlows: `number` last flows (or first with `first`), `since`/`until` bounds on flow time,
// `follow` to keep streaming, whitelist/blacklist filters (agent/hubble/filter.h), `field_mask`
// to send only some flow fields. Without number, since or follow it sends every flow in the
// ring. A follower that falls more than the ring's capacity behind receives a LostEvent
// (HUBBLE_RING_BUFFER) with the count it missed; losses upstream of the ring are in the ring as
// LostEvents and reach every reader. GetAgentEvents and GetDebugEvents work the same way over
// their rings, without filters.
// Errors: bad filters, bad field-mask paths or first+follow are INVALID_ARGUMENT naming the field.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/peer.h"
#include "agent/hubble/pipeline.h"

namespace grpc {
class Server;
class ServerCredentials;
}  // namespace grpc

namespace cilium::hubble {

struct TlsOptions {
  bool enabled = false;
  std::string cert_file, key_file;  // PEM: the server's certificate (chain) and key
  // PEM CA bundles: with any, clients must present a certificate one of them signed (mTLS).
  std::vector<std::string> client_ca_files;
  std::string server_name;  // the name the certificate carries (GetNodes, Peer)
};

// The option names a server's TLS errors name (the agent's by default; hubble-relay has its own).
struct TlsFlagNames {
  std::string_view cert = "hubble-tls-cert-file";
  std::string_view key = "hubble-tls-key-file";
  std::string_view client_ca = "hubble-tls-client-ca-files";
};

// gRPC server credentials from `tls`'s PEM files: the certificate (chain) and key, and with
// client CAs a client certificate one of them signed is required (mTLS, as Cilium). Errors:
// kFailedPrecondition naming the option (missing cert/key, unreadable or empty file).
Result<std::shared_ptr<grpc::ServerCredentials>> serverTlsCredentials(const TlsOptions& tls,
                                                                      TlsFlagNames names = {});

struct ServerOptions {
  std::string unix_socket;  // path; "" = none. A stale socket file is replaced.
  std::string tcp_address;  // "host:port", ":port" (every address), port 0 = any; "" = none
  TlsOptions tls;           // on the TCP listener; the Unix socket is always plain
  std::string version;      // reported in ServerStatus and GetNodes
  std::string cluster_name = "default";  // GetNamespaces, Peer names
  // The address peers are told (Peer service); "" = tcp_address, or the socket without TCP.
  std::string peer_address;
  // The cluster's nodes for the Peer service (every node's Hubble server at its address and
  // this server's TCP port); unset, or without a TCP listener: this node only.
  ClusterPeerSource::Lister cluster_nodes;
};

// The checks GetFlows makes before it answers (unknown fields, filters, first+follow, field
// mask): kInvalidArgument naming the field. hubble-relay makes the same ones before fanning out.
Status checkFlowsRequest(const observer::GetFlowsRequest& req);

class HubbleServer {
 public:
  // `pipeline` must outlive the server.
  HubbleServer(FlowPipeline& pipeline, ServerOptions opts);
  ~HubbleServer();  // stop()
  HubbleServer(const HubbleServer&) = delete;
  HubbleServer& operator=(const HubbleServer&) = delete;

  Status start();
  // Ends following streams, then stops. Idempotent.
  void stop();
  // The TCP port bound (the chosen one for port 0); 0 without TCP.
  int tcpPort() const { return tcp_port_; }
  const ServerOptions& options() const { return opts_; }
  // The peer source the Peer service answers from; set before start() to serve a cluster's
  // servers. Default: this node only. Must outlive the server.
  void setPeerSource(const PeerSource* source) { peer_source_ = source; }

  class Service;

 private:
  FlowPipeline& pipeline_;
  ServerOptions opts_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<LocalPeerSource> local_peers_;
  std::unique_ptr<ClusterPeerSource> cluster_peers_;
  const PeerSource* peer_source_ = nullptr;
  std::unique_ptr<PeerService> peer_service_;
  std::unique_ptr<grpc::Server> server_;
  int tcp_port_ = 0;
};

}  // namespace cilium::hubble
