// hubble-relay's view of the cluster: the nodes' Hubble servers, learnt from a Peer service
// (peer.Peer/Notify of an agent, as Cilium's relay does) and/or a static list, each with a gRPC
// channel that reconnects with exponential backoff when the node goes away.
//
// Discovery: a thread keeps a Notify stream to the peer service open; PEER_ADDED/UPDATED
// (re)create a node's channel, PEER_DELETED drops it. When the stream fails, it reconnects after
// a backoff that doubles from 100 ms up to `retry_timeout`.
// Connections: each node's channel uses gRPC's reconnect backoff (initial 100 ms, max
// `retry_timeout`); a monitor thread asks idle channels to connect every 200 ms, so a restarted
// node is connected again without waiting for a request. A node is "connected" while its
// channel is READY.
// TLS to nodes (Cilium's --tls-hubble-*): the client certificate and key, and the CAs the
// nodes' certificates are checked against; the name checked is the one the peer announced.
// Nodes on a Unix socket are always reached without TLS. So is a Unix-socket peer service; a
// TCP one (the chart's hubble-peer.<namespace>.svc...:443, served by the agents' TLS listener) is
// reached with the same client certificate and CAs, checking the name Cilium's relay checks,
// hubble-peer.<cluster_name>.hubble-grpc.cilium.io (which the agents' *.<cluster>.hubble-grpc
// certificate covers). The files are read again every
// `cert_reload_interval`; when they changed (and still load), the TLS nodes' channels are made
// anew with them (streams already open finish on the old ones), as Cilium's relay picks up
// renewed certificates without a restart. A file that stops loading keeps the certificates in use.
// Names, as Hubble's Fullname: a peer announced without a cluster ("node-1") is known as
// "<cluster_name>/node-1" unless the cluster is "default"; its TLS server name (when the peer
// announces none) is "node-1.<cluster_name>.hubble-grpc.cilium.io".
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/peer.h"
#include "agent/hubble/proto.h"

namespace cilium::hubble::relay {

// The name Cilium's relay checks on a TCP peer service: the TLS name of a node called so.
inline constexpr std::string_view kPeerServiceName = "hubble-peer";

struct ClientTls {
  bool enabled = false;
  std::string cert_file, key_file;           // the relay's client certificate (mTLS)
  std::vector<std::string> server_ca_files;  // CAs of the nodes' certificates
};

struct PoolOptions {
  // "unix:///path" or host:port of an agent's Hubble server serving peer.Peer; "" = none.
  std::string peer_service;
  std::vector<PeerInfo> static_peers;  // nodes known without discovery
  ClientTls tls;
  std::chrono::milliseconds dial_timeout{5000};    // per node call (status, nodes, namespaces)
  std::chrono::milliseconds retry_timeout{30000};  // longest reconnect backoff
  std::string cluster_name = "default";            // --cluster-name
  std::chrono::milliseconds cert_reload_interval{1000};
};

// What the relay's health check and metrics report (Cilium's PeerManager status).
struct PoolStatus {
  // The Notify stream to the peer service is open (true without a peer service).
  bool peer_service_connected = false;
  size_t available_peers = 0;  // nodes whose channel is not failing (IDLE, CONNECTING, READY)
  // Nodes per channel state, by gRPC's names (IDLE, CONNECTING, READY, TRANSIENT_FAILURE,
  // SHUTDOWN): hubble_relay_pool_peer_connection_status.
  std::map<std::string, size_t> states;
};

struct NodeConn {
  PeerInfo info;
  std::string target;  // what the channel dials
  bool tls = false;
  std::string tls_server_name;  // the name checked (announced, or Cilium's for the cluster)
  bool connected = false;
  std::shared_ptr<grpc::Channel> channel;
};

class PeerPool {
 public:
  // Reads the TLS files; errors name the flag.
  static Result<std::unique_ptr<PeerPool>> create(PoolOptions opts);
  ~PeerPool();  // stop()
  PeerPool(const PeerPool&) = delete;
  PeerPool& operator=(const PeerPool&) = delete;

  void start();
  void stop();  // idempotent

  // Every known node, sorted by name, with its connection state now.
  std::vector<NodeConn> nodes() const;
  PoolStatus status() const;
  const PoolOptions& options() const { return opts_; }
  // Times the client certificates were reloaded after a change.
  uint64_t certReloads() const { return cert_reloads_.load(); }

  // Whether the peer service is reached over TLS, and the name its certificate must carry.
  bool peerServiceTls() const;
  std::string peerServiceTlsName() const;

  // The dial target of a peer address: "unix://..." as is; a host-less ":port" (or 0.0.0.0,
  // [::]) gets the peer service's host, or 127.0.0.1 when that is a Unix socket.
  static std::string dialTarget(const std::string& address, const std::string& peer_service);

 private:
  explicit PeerPool(PoolOptions opts) : opts_(std::move(opts)) {}
  struct Pems {
    std::string roots, cert, key;
    bool operator==(const Pems&) const = default;
  };
  static Result<Pems> readPems(const ClientTls& tls);
  // Makes the node's channel (always anew with `force`, e.g. after a certificate reload).
  void upsert(const PeerInfo& p, bool force = false);
  void reloadCerts();
  std::string fullName(const std::string& announced) const;
  void remove(const std::string& name);
  std::shared_ptr<grpc::Channel> peerServiceChannel() const;
  void discoverLoop();
  void monitorLoop();
  bool sleepUnlessStopping(std::chrono::milliseconds d);

  PoolOptions opts_;
  mutable std::mutex mu_;
  Pems pems_;  // under mu_
  std::map<std::string, NodeConn> nodes_;
  std::atomic<bool> stopping_{false}, peer_service_connected_{false};
  std::atomic<uint64_t> cert_reloads_{0};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  grpc::ClientContext* notify_ctx_ = nullptr;  // under stop_mu_
  std::thread discover_, monitor_;
  bool started_ = false;
};

}  // namespace cilium::hubble::relay
