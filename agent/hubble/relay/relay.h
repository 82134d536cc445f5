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
#pragma once

#include <memory>
#include <string>

#include "agent/common/error.h"
#include "agent/hubble/relay/pool.h"
#include "agent/hubble/server.h"

namespace grpc {
class Server;
}

namespace cilium::hubble::relay {

struct RelayOptions {
  std::string listen_address = ":4245";  // host:port, ":port" = every address, port 0 = any
  size_t sort_buffer_len = 100;          // per node, events waiting for the merge
  std::chrono::milliseconds sort_buffer_drain_timeout{1000};
  std::string version;
  // The relay's own listener (Cilium's --tls-relay-server-*-file, --tls-relay-client-ca-files;
  // with client CAs, clients need a certificate one of them signed). Off: plaintext.
  TlsOptions tls;
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

  class Service;

 private:
  PeerPool& pool_;
  RelayOptions opts_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace cilium::hubble::relay
