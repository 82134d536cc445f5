// The Hubble Observer gRPC server (observer.Observer: GetFlows, ServerStatus, GetNodes) over a
// FlowPipeline, on a Unix socket and/or TCP, wire-compatible with Hubble clients.
//
// GetFlows: `number` last flows (or first with `first`), `since`/`until` bounds on flow time,
// `follow` to keep streaming, whitelist/blacklist filters (agent/hubble/filter.h). Without number,
// since or follow it sends every flow in the ring. A follower that falls more than the ring's
// capacity behind receives a LostEvent (HUBBLE_RING_BUFFER) with the count it missed; losses
// upstream of the ring are in the ring as LostEvents and reach every reader.
// Errors: bad filters or first+follow are INVALID_ARGUMENT naming the field.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "agent/common/error.h"
#include "agent/hubble/pipeline.h"

namespace grpc {
class Server;
}

namespace cilium::hubble {

struct ServerOptions {
  std::string unix_socket;  // path; "" = none. A stale socket file is replaced.
  std::string tcp_address;  // "host:port", ":port" (every address), port 0 = any; "" = none
  std::string version;      // reported in ServerStatus and GetNodes
};

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

  class Service;

 private:
  FlowPipeline& pipeline_;
  ServerOptions opts_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int tcp_port_ = 0;
};

}  // namespace cilium::hubble
