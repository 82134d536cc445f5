// Writers of agent state into the apiserver, taking plain inputs (the endpoint manager and the
// policy engine are wired to them by the daemon): a CiliumEndpoint per local pod, and the
// per-node status of each CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy.
#pragma once

#include <cstdint>
#include <string>
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

}  // namespace cilium::k8s
