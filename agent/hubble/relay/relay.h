// hubble-relay's Observer service: the cluster's flows through one endpoint (Cilium's :4245),
// over the nodes of a PeerPool.
//
//   GetFlows       every connected node's GetFlows with the client's request (filters, since/
//                  until, field mask passed through), merged in time order (FlowMerger). Without
//                  follow, `number` is cluster-wide: the last (first) `number` flows of all nodes
//                  together. With follow, each node sends its last `number` and then its new
//                  flows; a node that connects (or comes back) during the stream joins it with its
//                  new flows. Nodes not connected are announced first as a NodeStatusEvent
//                  NODE_UNAVAILABLE; a node stream that fails as NODE_ERROR, one that joins as
//                  NODE_CONNECTED.
//   ServerStatus   the connected nodes' counters summed (uptime: the longest), with
//                  num_connected_nodes, num_unavailable_nodes and unavailable_nodes.
//   GetNodes       every known node with its state (NODE_CONNECTED with its counters, or
//                  NODE_UNAVAILABLE).
//   GetNamespaces  the union of the connected nodes' namespaces, sorted.
//   GetAgentEvents, GetDebugEvents: UNIMPLEMENTED (as Cilium's relay; ask a node).
// A request GetFlows would refuse is refused before any node is asked (INVALID_ARGUMENT).
//
// Beside the Observer, as Cilium's relay:
//   grpc.health.v1.Health on the Observer's listener and on `health_listen_address`
//     (plaintext, what the relay's readiness probe asks): SERVING while the peer service stream
//     is open and at least one node's channel is not failing, NOT_SERVING otherwise; checked
//     every `health_interval`.
//   Prometheus on `metrics_listen_address` (GET /metrics): hubble_relay_pool_peer_connection_status
//     {status} (nodes per channel state) and the grpc_server_* metrics (grpc_metrics.h).
//   Server certificate reload: with TLS, the certificate, key and client CAs are watched
//     (gRPC's FileWatcherCertificateProvider, every `cert_reload_interval`); new handshakes use
//     the new files, connections already up keep theirs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/relay/pool.h"
#include "agent/hubble/server.h"
#include "agent/metrics/registry.h"
#include "agent/metrics/server.h"

namespace grpc {
class Server;
}

namespace cilium::hubble::relay {

class HealthService;

struct RelayOptions {
  std::string listen_address = ":4245";  // host:port, ":port" = every address, port 0 = any
  size_t sort_buffer_len = 100;          // per node, events waiting for the merge
  std::chrono::milliseconds sort_buffer_drain_timeout{1000};
  std::string version;
  // The relay's own listener (Cilium's --tls-relay-server-*-file, --tls-relay-client-ca-files;
  // with client CAs, clients need a certificate one of them signed). Off: plaintext.
  TlsOptions tls;
  std::string health_listen_address;   // "" = none (Cilium's default is :4222)
  std::string metrics_listen_address;  // "" = none (Cilium's chart uses :9966)
  std::chrono::milliseconds health_interval{1000};
  std::chrono::seconds cert_reload_interval{1};
};

class RelayServer {
 public:
  // `pool` must outlive the server.
  RelayServer(PeerPool& pool, RelayOptions opts);
  ~RelayServer();  // stop()
  RelayServer(const RelayServer&) = delete;
  RelayServer& operator=(const RelayServer&) = delete;

  Status start();
  void stop();  // ends following streams, then stops; idempotent
  int port() const { return port_; }
  int healthPort() const { return health_port_; }
  int metricsPort() const;
  // What the health service says now.
  bool serving() const { return serving_.load(); }

  class Service;

 private:
  void housekeeping();

  PeerPool& pool_;
  RelayOptions opts_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_, health_server_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::string ca_dir_;  // the combined client-CA bundle the certificate watcher reads
  std::vector<std::string> ca_files_;
  int port_ = 0, health_port_ = 0;
  std::atomic<bool> serving_{false}, stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::thread housekeeper_;
};

}  // namespace cilium::hubble::relay
