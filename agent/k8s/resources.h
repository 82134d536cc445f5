// Typed Kubernetes resources the agent consumes, decoded from untrusted JSON with errors that
// name the field ("spec.ports[1].port: must be an integer"). Only the fields the agent uses are
// kept; policies also keep their whole object (`raw`) for agent/policy's decoder.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"

namespace cilium::k8s {

using StringMap = std::map<std::string, std::string>;

struct ObjectMeta {
  std::string name;
  std::string namespace_name;  // "" for cluster-scoped objects
  std::string uid;
  std::string resource_version;
  StringMap labels;
  StringMap annotations;
  bool operator==(const ObjectMeta&) const = default;
};

// "<namespace>/<name>", or "<name>" for cluster-scoped objects: the store key.
std::string objectKey(std::string_view namespace_name, std::string_view name);

struct ContainerPort {
  std::string name;
  uint16_t port = 0;
  std::string protocol = "TCP";
  bool operator==(const ContainerPort&) const = default;
};

struct Pod {
  ObjectMeta meta;
  std::string node_name;
  std::string service_account;  // spec.serviceAccountName
  bool host_network = false;
  std::vector<ContainerPort> ports;  // every container's ports
  std::string phase;
  std::vector<std::string> pod_ips;
  bool ready = false;     // the latest status.conditions entry of type Ready says "True"
  bool deleting = false;  // metadata.deletionTimestamp is set
  bool operator==(const Pod&) const = default;
};

struct Namespace {
  ObjectMeta meta;
  bool operator==(const Namespace&) const = default;
};

struct Taint {
  std::string key;
  std::string effect;  // NoSchedule, PreferNoSchedule, NoExecute
  // The entry as the API server sent it (value, timeAdded, ...): written back unchanged when
  // another taint is added or removed, and what a JSON patch "test" compares.
  nlohmann::json raw;
  bool operator==(const Taint&) const = default;
};

struct Node {
  ObjectMeta meta;
  std::vector<std::string> pod_cidrs;
  std::vector<std::string> internal_ips;
  std::vector<Taint> taints;  // spec.taints
  bool operator==(const Node&) const = default;
};

struct ServicePort {
  std::string name;
  std::string protocol = "TCP";
  uint16_t port = 0;
  std::string target_port;  // number or name, as text; "" when absent
  uint16_t node_port = 0;
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  ObjectMeta meta;
  std::string type = "ClusterIP";
  std::vector<std::string> cluster_ips;  // "None" for headless services
  std::vector<std::string> ip_families;  // spec.ipFamilies: "IPv4" / "IPv6", clusterIPs' order
  std::string ip_family_policy;  // SingleStack, PreferDualStack, RequireDualStack; "" = single
  std::vector<ServicePort> ports;
  StringMap selector;
  std::vector<std::string> external_ips;       // spec.externalIPs
  std::vector<std::string> load_balancer_ips;  // status.loadBalancer.ingress[].ip
  std::string session_affinity;                // "ClientIP" or "None"
  int64_t session_affinity_timeout = 0;        // ...clientIP.timeoutSeconds; 0 = default
  std::string external_traffic_policy;
  std::string internal_traffic_policy;
  bool operator==(const Service&) const = default;
};

struct EndpointPort {
  std::string name;
  std::string protocol = "TCP";
  uint16_t port = 0;
  bool operator==(const EndpointPort&) const = default;
};

struct Endpoint {
  std::vector<std::string> addresses;
  bool ready = true;  // conditions.ready, absent = ready
  bool serving = true;
  bool terminating = false;
  std::string node_name;
  bool operator==(const Endpoint&) const = default;
};

struct EndpointSlice {
  ObjectMeta meta;
  std::string service_name;  // label kubernetes.io/service-name
  std::string address_type;
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;
  bool operator==(const EndpointSlice&) const = default;
};

// NetworkPolicy, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: the metadata plus the
// object as received, decoded into rules by agent/policy (policy::decodePolicyJson).
struct PolicyResource {
  ObjectMeta meta;
  nlohmann::json raw;
  bool operator==(const PolicyResource& o) const { return meta == o.meta && raw == o.raw; }
};
struct NetworkPolicy : PolicyResource {};
struct CiliumNetworkPolicy : PolicyResource {};
struct CiliumClusterwideNetworkPolicy : PolicyResource {};

struct NodeAddress {
  std::string type;  // "InternalIP", "ExternalIP", "CiliumInternalIP"; "" when absent
  std::string ip;
  bool operator==(const NodeAddress&) const = default;
};

struct CiliumNode {
  ObjectMeta meta;
  std::vector<std::string> pod_cidrs;  // spec.ipam.podCIDRs
  std::vector<NodeAddress> addresses;  // spec.addresses[]
  std::string health_ipv4;             // spec.health.ipv4
  std::string health_ipv6;             // spec.health.ipv6
  std::string boot_id;                 // spec.bootid
  std::string operator_error;          // status.ipam.operator-status.error
  bool operator==(const CiliumNode&) const = default;
};

struct EndpointAddress {
  std::string ipv4;
  std::string ipv6;
  bool operator==(const EndpointAddress&) const = default;
};

struct CiliumEndpoint {
  ObjectMeta meta;
  int64_t endpoint_id = 0;
  int64_t identity_id = 0;
  std::vector<std::string> identity_labels;
  std::vector<EndpointAddress> addressing;
  // status.networking.node: the hosting node's IP, as Cilium writes it (the tunnel endpoint of
  // the pod's addresses on other nodes); a node name is accepted too.
  std::string node;
  std::string state;
  bool ingress_enforcing = false;
  bool egress_enforcing = false;
  bool operator==(const CiliumEndpoint&) const = default;
};

struct CiliumIdentity {
  ObjectMeta meta;            // name = the numeric identity
  StringMap security_labels;  // "k8s:app" -> "web"
  bool operator==(const CiliumIdentity&) const = default;
};

// Where a resource lives in the API and how its objects are recognised.
struct ResourceInfo {
  std::string_view group;    // "" for the core group
  std::string_view version;  // "v1", "v2", ...
  std::string_view plural;   // URL segment: "pods"
  std::string_view kind;     // "Pod"
  bool namespaced = true;

  std::string apiVersion() const;  // "v1", "cilium.io/v2"
  // "/api/v1/pods" or "/apis/cilium.io/v2/namespaces/<ns>/ciliumendpoints" (ns "" = all).
  std::string collectionPath(std::string_view namespace_name = {}) const;
  std::string objectPath(std::string_view namespace_name, std::string_view name) const;
};

template <typename T>
struct Resource;  // specialised below: info() and decode()

#define CILIUM_K8S_RESOURCE(Type, Group, Version, Plural, Kind, Namespaced) \
  template <>                                                               \
  struct Resource<Type> {                                                   \
    static constexpr ResourceInfo info() {                                  \
      return ResourceInfo{Group, Version, Plural, Kind, Namespaced};        \
    }                                                                       \
    static Result<Type> decode(const nlohmann::json& object);               \
  }

CILIUM_K8S_RESOURCE(Pod, "", "v1", "pods", "Pod", true);
CILIUM_K8S_RESOURCE(Namespace, "", "v1", "namespaces", "Namespace", false);
CILIUM_K8S_RESOURCE(Node, "", "v1", "nodes", "Node", false);
CILIUM_K8S_RESOURCE(Service, "", "v1", "services", "Service", true);
CILIUM_K8S_RESOURCE(EndpointSlice, "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice",
                    true);
CILIUM_K8S_RESOURCE(NetworkPolicy, "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy",
                    true);
CILIUM_K8S_RESOURCE(CiliumNetworkPolicy, "cilium.io", "v2", "ciliumnetworkpolicies",
                    "CiliumNetworkPolicy", true);
CILIUM_K8S_RESOURCE(CiliumClusterwideNetworkPolicy, "cilium.io", "v2",
                    "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", false);
CILIUM_K8S_RESOURCE(CiliumNode, "cilium.io", "v2", "ciliumnodes", "CiliumNode", false);
CILIUM_K8S_RESOURCE(CiliumEndpoint, "cilium.io", "v2", "ciliumendpoints", "CiliumEndpoint", true);
CILIUM_K8S_RESOURCE(CiliumIdentity, "cilium.io", "v2", "ciliumidentities", "CiliumIdentity", false);
#undef CILIUM_K8S_RESOURCE

// Every kind above, for discovery and for the manifests source.
const std::vector<ResourceInfo>& allResources();
const ResourceInfo* findResourceByKind(std::string_view kind);

// Checks `object` is a `info.kind` object (kind and apiVersion when present; a List item may
// omit both) and decodes its metadata. kInvalidArgument naming the field otherwise.
Result<ObjectMeta> decodeMeta(const nlohmann::json& object, const ResourceInfo& info);

// Serialises an object back to JSON (for writes: CiliumEndpoint, CiliumIdentity).
nlohmann::json toJson(const CiliumEndpoint& cep);
nlohmann::json toJson(const CiliumIdentity& id);
// The spec (and status, when operator_error is set) as Cilium writes them.
nlohmann::json toJson(const CiliumNode& node);

// coordination.k8s.io/v1 Lease: not watched by the agent (not in allResources()), used for the
// operator's leader election and served by the fake apiserver.
constexpr ResourceInfo leaseResource() {
  return ResourceInfo{"coordination.k8s.io", "v1", "leases", "Lease", true};
}

}  // namespace cilium::k8s
