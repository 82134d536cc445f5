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
// Nodes on a Unix socket are always reached without TLS.
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
};

struct NodeConn {
  PeerInfo info;
  std::string target;  // what the channel dials
  bool tls = false;
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
  const PoolOptions& options() const { return opts_; }

  // The dial target of a peer address: "unix://..." as is; a host-less ":port" (or 0.0.0.0,
  // [::]) gets the peer service's host, or 127.0.0.1 when that is a Unix socket.
  static std::string dialTarget(const std::string& address, const std::string& peer_service);

 private:
  explicit PeerPool(PoolOptions opts) : opts_(std::move(opts)) {}
  void upsert(const PeerInfo& p);
  void remove(const std::string& name);
  void discoverLoop();
  void monitorLoop();
  bool sleepUnlessStopping(std::chrono::milliseconds d);

  PoolOptions opts_;
  std::string pem_cert_, pem_key_, pem_roots_;
  mutable std::mutex mu_;
  std::map<std::string, NodeConn> nodes_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  grpc::ClientContext* notify_ctx_ = nullptr;  // under stop_mu_
  std::thread discover_, monitor_;
  bool started_ = false;
};

}  // namespace cilium::hubble::relay
