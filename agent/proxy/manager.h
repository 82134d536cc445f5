// The agent's side of the L7 proxy (docs/l7.md): the proxy ports, the endpoints' L7 policies as
// one snapshot, and the Unix socket the cilium-proxy process connects to (wire.h). Each change
// is pushed as a new snapshot version and waited for (bounded) until the proxy acknowledges it,
// so the proxy knows a rule before the datapath sends it traffic; a proxy that is not connected
// is never waited for (it keeps its last snapshot; the datapath drops what it would redirect to a
// proxy that does not listen). Access records go to the record handler (Hubble, metrics).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/common/error.h"
#include "agent/common/fd.h"
#include "agent/common/inet.h"
#include "agent/endpoint/manager.h"
#include "agent/proxy/l7_policy.h"
#include "agent/proxy/ports.h"
#include "agent/proxy/wire.h"

namespace cilium::proxy {

struct ManagerOptions {
  std::string socket_path;
  ProxyPortSet ports;
  std::chrono::milliseconds ack_timeout{2000};
};

struct ProxyStatus {
  bool connected = false;
  int pid = 0;
  uint64_t restarts = 0;     // supervisor restarts the proxy reported, plus reconnections seen
  uint64_t connections = 0;  // proxy connections accepted since the agent started
  uint64_t version = 0;      // latest snapshot
  uint64_t acked = 0;        // latest the proxy acknowledged
  size_t endpoints = 0;      // endpoints with L7 rules
  size_t redirects = 0;      // (endpoint, direction, port) redirects
  uint64_t ack_timeouts = 0;
};

// Converts the engine's form into the proxy's.
EndpointPolicy toProxyPolicy(uint16_t id, uint32_t identity, const std::optional<IpAddr>& ipv4,
                             const policy::L7Policy& l7,
                             const std::optional<IpAddr>& ipv6 = std::nullopt);

class Manager final : public endpoint::L7PolicySink {
 public:
  static Result<std::unique_ptr<Manager>> start(ManagerOptions options);
  ~Manager() override;

  void l7PoliciesChanged(const std::vector<Update>& updates) override;
  void endpointRemoved(uint16_t endpoint_id) override;

  // Called on the connection's reader thread for every record; must be quick.
  void setRecordHandler(std::function<void(const AccessRecord&)> handler);
  ProxyStatus status() const;
  const ProxyPortSet& ports() const { return options_.ports; }
  PolicySnapshot snapshot() const;

 private:
  explicit Manager(ManagerOptions options) : options_(std::move(options)) {}
  void acceptLoop();
  void serve(UniqueFd fd);
  void pushLocked(std::unique_lock<std::mutex>& lock);
  PolicySnapshot snapshotLocked() const;

  ManagerOptions options_;
  UniqueFd listener_;
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint16_t, EndpointPolicy> endpoints_;
  uint64_t version_ = 1;
  uint64_t acked_ = 0;
  int conn_fd_ = -1;  // the connected proxy (owned by its serve() thread)
  uint64_t conn_gen_ = 0;
  ProxyStatus status_;
  std::function<void(const AccessRecord&)> on_record_;
  bool stopping_ = false;
  std::vector<std::thread> conn_threads_;
};

}  // namespace cilium::proxy
