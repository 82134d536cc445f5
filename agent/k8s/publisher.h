// Writers of agent state into the apiserver, taking plain inputs (the endpoint manager and the
// policy engine are wired to them by the daemon): a CiliumEndpoint per local pod, and the
// per-node status of each CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "agent/k8s/client.h"
#include "agent/k8s/resources.h"

namespace cilium::k8s {

struct EndpointState {
  std::string pod_namespace;
  std::string pod_name;
  uint16_t endpoint_id = 0;
  uint32_t identity = 0;
  std::vector<std::string> identity_labels;  // printed: "k8s:app=web"
  std::string ipv4;
  std::string ipv6;
  std::string node_ip;  // status.networking.node: this node's address
  bool ingress_enforcing = false;
  bool egress_enforcing = false;
  std::string state = "ready";
  bool operator==(const EndpointState&) const = default;
};

class CiliumEndpointPublisher {
 public:
  explicit CiliumEndpointPublisher(Client& client) : client_(client) {}
  // Creates the pod's CiliumEndpoint or updates it (read, then replace with its resourceVersion;
  // a 409 from a concurrent writer is retried). No write when nothing changed.
  Status publish(const EndpointState& state);
  // Deletes it; absent is fine.
  Status remove(const std::string& pod_namespace, const std::string& pod_name);

 private:
  Client& client_;
};

struct PolicyStatus {
  bool ok = true;         // enforcing
  std::string error;      // why it was rejected (when !ok)
  uint64_t revision = 0;  // local policy revision it is part of
};

class PolicyStatusWriter {
 public:
  PolicyStatusWriter(Client& client, std::string node_name)
      : client_(client), node_(std::move(node_name)) {}
  // Writes status.nodes[<node>] of the policy (kind CiliumNetworkPolicy with its namespace, or
  // CiliumClusterwideNetworkPolicy) with a JSON merge patch on its status subresource.
  // kNotFound when the policy is gone; kInvalidArgument for other kinds.
  Status write(std::string_view kind, const std::string& namespace_name, const std::string& name,
               const PolicyStatus& status);

 private:
  Client& client_;
  std::string node_;
};

// PolicyStatusWriter on a thread of its own: queue() never waits for the API server (a slow one
// must not hold up policy); the latest status of each object is written, and a failed write
// (other than the policy being gone) is logged. Only CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy have a per-node status; other kinds are ignored.
class PolicyStatusPublisher {
 public:
  PolicyStatusPublisher(Client& client, std::string node_name);
  ~PolicyStatusPublisher();  // writes what is queued, then stops
  PolicyStatusPublisher(const PolicyStatusPublisher&) = delete;
  PolicyStatusPublisher& operator=(const PolicyStatusPublisher&) = delete;

  void queue(std::string_view kind, const ObjectMeta& meta, const PolicyStatus& status);

 private:
  void run();

  PolicyStatusWriter writer_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::tuple<std::string, std::string, std::string>, PolicyStatus> pending_;
  std::thread thread_;
};

}  // namespace cilium::k8s
