// The REST API models (api/v1/openapi.yaml), shared by the agent's handlers, the client library,
// cilium-cni and cilium-dbg. Field names on the wire are the schema's (kebab-case or Cilium's
// camelCase where Cilium uses it); encode()/decode() in codec.h convert. Schemas follow Cilium's
// /v1 API; our additions are marked "extension" here and in the contract.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/model/codec.h"

namespace cilium::api {

using Labels = std::vector<std::string>;  // "source:key=value"
using ConfigurationMap = std::map<std::string, std::string>;

// ---- Enums ----------------------------------------------------------------------------------

enum class EndpointState {
  kWaitingForIdentity,
  kNotReady,
  kWaitingToRegenerate,
  kRegenerating,
  kRestoring,
  kReady,
  kDisconnecting,
  kDisconnected,
  kInvalid,
};
template <>
struct EnumNames<EndpointState> {
  static constexpr std::array<std::pair<EndpointState, std::string_view>, 9> kNames{{
      {EndpointState::kWaitingForIdentity, "waiting-for-identity"},
      {EndpointState::kNotReady, "not-ready"},
      {EndpointState::kWaitingToRegenerate, "waiting-to-regenerate"},
      {EndpointState::kRegenerating, "regenerating"},
      {EndpointState::kRestoring, "restoring"},
      {EndpointState::kReady, "ready"},
      {EndpointState::kDisconnecting, "disconnecting"},
      {EndpointState::kDisconnected, "disconnected"},
      {EndpointState::kInvalid, "invalid"},
  }};
};

// Status.state of every component in StatusResponse.
enum class StatusState { kOk, kWarning, kFailure, kDisabled };
template <>
struct EnumNames<StatusState> {
  static constexpr std::array<std::pair<StatusState, std::string_view>, 4> kNames{{
      {StatusState::kOk, "Ok"},
      {StatusState::kWarning, "Warning"},
      {StatusState::kFailure, "Failure"},
      {StatusState::kDisabled, "Disabled"},
  }};
};

enum class EndpointHealthStatus { kOk, kBootstrap, kPending, kWarning, kFailure, kDisabled };
template <>
struct EnumNames<EndpointHealthStatus> {
  static constexpr std::array<std::pair<EndpointHealthStatus, std::string_view>, 6> kNames{{
      {EndpointHealthStatus::kOk, "OK"},
      {EndpointHealthStatus::kBootstrap, "Bootstrap"},
      {EndpointHealthStatus::kPending, "Pending"},
      {EndpointHealthStatus::kWarning, "Warning"},
      {EndpointHealthStatus::kFailure, "Failure"},
      {EndpointHealthStatus::kDisabled, "Disabled"},
  }};
};

enum class EndpointPolicyEnabled {
  kNone,
  kIngress,
  kEgress,
  kBoth,
  kAuditIngress,
  kAuditEgress,
  kAuditBoth,
};
template <>
struct EnumNames<EndpointPolicyEnabled> {
  static constexpr std::array<std::pair<EndpointPolicyEnabled, std::string_view>, 7> kNames{{
      {EndpointPolicyEnabled::kNone, "none"},
      {EndpointPolicyEnabled::kIngress, "ingress"},
      {EndpointPolicyEnabled::kEgress, "egress"},
      {EndpointPolicyEnabled::kBoth, "both"},
      {EndpointPolicyEnabled::kAuditIngress, "audit-ingress"},
      {EndpointPolicyEnabled::kAuditEgress, "audit-egress"},
      {EndpointPolicyEnabled::kAuditBoth, "audit-both"},
  }};
};

// ---- Status (GET /healthz) --------------------------------------------------------------------

// Schema "Status": one component's state.
struct ComponentStatus {
  StatusState state = StatusState::kOk;
  std::string msg;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v.required("state", s.state);
    v("msg", s.msg);
  }
  bool operator==(const ComponentStatus&) const = default;
};

struct K8sStatus {
  StatusState state = StatusState::kDisabled;
  std::string msg;
  std::vector<std::string> k8s_api_versions;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v.required("state", s.state);
    v("msg", s.msg);
    v("k8s-api-versions", s.k8s_api_versions);
  }
  bool operator==(const K8sStatus&) const = default;
};

struct HubbleObserverStatus {
  int64_t max_flows = 0;
  int64_t current_flows = 0;
  int64_t seen_flows = 0;
  std::string uptime;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("max-flows", s.max_flows);
    v("current-flows", s.current_flows);
    v("seen-flows", s.seen_flows);
    v("uptime", s.uptime);
  }
  bool operator==(const HubbleObserverStatus&) const = default;
};

struct HubbleStatus {
  StatusState state = StatusState::kDisabled;
  std::string msg;
  std::optional<HubbleObserverStatus> observer;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v.required("state", s.state);
    v("msg", s.msg);
    v("observer", s.observer);
  }
  bool operator==(const HubbleStatus&) const = default;
};

struct IpamStatus {
  std::map<std::string, std::string> allocations;  // address -> owner
  std::vector<std::string> ipv4;                   // allocated IPv4 addresses
  std::vector<std::string> ipv6;
  std::string status;  // human summary ("IPv4: 2/253 allocated from 10.200.0.0/24")
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("allocations", s.allocations);
    v("ipv4", s.ipv4);
    v("ipv6", s.ipv6);
    v("status", s.status);
  }
  bool operator==(const IpamStatus&) const = default;
};

struct ClusterStatus {
  std::optional<ComponentStatus> cilium_health;
  std::string self;  // local node name
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("ciliumHealth", s.cilium_health);
    v("self", s.self);
  }
  bool operator==(const ClusterStatus&) const = default;
};

struct IdentityRange {
  int64_t min_identity = 0;
  int64_t max_identity = 0;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("min-identity", s.min_identity);
    v("max-identity", s.max_identity);
  }
  bool operator==(const IdentityRange&) const = default;
};

struct BpfMapProperties {
  std::string name;
  int64_t size = 0;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("name", s.name);
    v("size", s.size);
  }
  bool operator==(const BpfMapProperties&) const = default;
};

struct BpfMapStatus {
  double dynamic_size_ratio = 0;
  std::vector<BpfMapProperties> maps;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("dynamic-size-ratio", s.dynamic_size_ratio);
    v("maps", s.maps);
  }
  bool operator==(const BpfMapStatus&) const = default;
};

struct CniChainingStatus {
  std::string mode;  // none, generic-veth, ...
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("mode", s.mode);
  }
  bool operator==(const CniChainingStatus&) const = default;
};

// GET /healthz. `cilium` is Ok once the agent is ready (state restored, API serving); before
// that it is Warning with msg "starting".
// The L7 proxy (Cilium's ProxyStatus): where it listens and which redirects use it.
struct ProxyRedirect {
  std::string name;   // "cilium-http-ingress", ...
  std::string proxy;  // the process serving it ("cilium-proxy", "none")
  int64_t proxy_port = 0;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("name", s.name);
    v("proxy", s.proxy);
    v("proxy-port", s.proxy_port);
  }
  bool operator==(const ProxyRedirect&) const = default;
};
struct Routing {
  std::string intra_host_routing_mode;  // "BPF" (bpf_redirect_peer) or "Legacy"
  std::string inter_host_routing_mode;  // "Tunnel" or "Native"
  std::string tunnel_protocol;          // "vxlan" in tunnel mode
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("intra-host-routing-mode", s.intra_host_routing_mode);
    v("inter-host-routing-mode", s.inter_host_routing_mode);
    v("tunnel-protocol", s.tunnel_protocol);
  }
  bool operator==(const Routing&) const = default;
};

struct ProxyStatus {
  std::string ip;          // where the proxies listen
  std::string port_range;  // "10000-20000"
  int64_t total_redirects = 0;  // (endpoint, direction, port) redirects in the policy
  int64_t total_ports = 0;
  std::string envoy_deployment_mode;  // "cilium-proxy (connected pid N)" here
  std::vector<ProxyRedirect> redirects;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("ip", s.ip);
    v("port-range", s.port_range);
    v("total-redirects", s.total_redirects);
    v("total-ports", s.total_ports);
    v("envoy-deployment-mode", s.envoy_deployment_mode);
    v("redirects", s.redirects);
  }
  bool operator==(const ProxyStatus&) const = default;
};

// Cilium's KubeProxyReplacement status: the mode ("True"/"False") and the native devices; ours
// adds the kube-proxy rules found in the node's network namespace at start (they still catch
// Service traffic before the BPF datapath and should be removed).
struct KubeProxyReplacement {
  std::string mode;
  std::vector<std::string> devices;
  std::vector<std::string> leftover_kube_proxy_chains;  // "KUBE-SERVICES", "KUBE-SVC-* (12)"
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("mode", s.mode);
    v("devices", s.devices);
    v("leftover-kube-proxy-chains", s.leftover_kube_proxy_chains);
  }
  bool operator==(const KubeProxyReplacement&) const = default;
};

struct StatusResponse {
  std::optional<ComponentStatus> cilium;
  std::optional<ComponentStatus> kvstore;
  std::optional<ComponentStatus> container_runtime;
  std::optional<K8sStatus> kubernetes;
  std::optional<HubbleStatus> hubble;
  std::optional<IpamStatus> ipam;
  std::optional<ClusterStatus> cluster;
  std::optional<IdentityRange> identity_range;
  std::optional<BpfMapStatus> bpf_maps;
  std::optional<CniChainingStatus> cni_chaining;
  std::optional<ProxyStatus> proxy;
  std::optional<Routing> routing;
  std::optional<KubeProxyReplacement> kube_proxy_replacement;
  std::string attach_mode;                   // "TCX" (newer Cilium field)
  std::string datapath_mode;                 // "veth"
  std::map<std::string, std::string> stale;  // probe name -> start time of a probe that hangs
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("cilium", s.cilium);
    v("kvstore", s.kvstore);
    v("container-runtime", s.container_runtime);
    v("kubernetes", s.kubernetes);
    v("hubble", s.hubble);
    v("ipam", s.ipam);
    v("cluster", s.cluster);
    v("identity-range", s.identity_range);
    v("bpf-maps", s.bpf_maps);
    v("cni-chaining", s.cni_chaining);
    v("proxy", s.proxy);
    v("routing", s.routing);
    v("kube-proxy-replacement", s.kube_proxy_replacement);
    v("attach-mode", s.attach_mode);
    v("datapath-mode", s.datapath_mode);
    v("stale", s.stale);
  }
  bool operator==(const StatusResponse&) const = default;
};

// ---- Configuration (GET/PATCH /config) --------------------------------------------------------

struct NodeAddressingElement {
  bool enabled = false;
  std::string ip;           // the router address on the pod network
  std::string alloc_range;  // the node's pod CIDR
  std::string address_type;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("enabled", s.enabled);
    v("ip", s.ip);
    v("alloc-range", s.alloc_range);
    v("address-type", s.address_type);
  }
  bool operator==(const NodeAddressingElement&) const = default;
};

struct NodeAddressing {
  std::optional<NodeAddressingElement> ipv4;
  std::optional<NodeAddressingElement> ipv6;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("ipv4", s.ipv4);
    v("ipv6", s.ipv6);
  }
  bool operator==(const NodeAddressing&) const = default;
};

// ---- Cluster nodes (GET /cluster/nodes) ---------------------------------------------------------

struct NodeElement {
  std::string name;
  std::optional<NodeAddressing> primary_address;  // alloc-range: the node's pod CIDR
  std::vector<NodeAddressingElement> secondary_addresses;
  std::optional<NodeAddressing> health_endpoint_address;
  std::string source;  // "custom-resource", "kubernetes", "local"
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("name", s.name);
    v("primary-address", s.primary_address);
    v("secondary-addresses", s.secondary_addresses);
    v("health-endpoint-address", s.health_endpoint_address);
    v("source", s.source);
  }
  bool operator==(const NodeElement&) const = default;
};

struct ClusterNodeStatus {
  int64_t client_id = 0;
  std::string self;
  std::vector<NodeElement> nodes_added;
  std::vector<NodeElement> nodes_removed;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("client-id", s.client_id);
    v("self", s.self);
    v("nodesAdded", s.nodes_added);
    v("nodesRemoved", s.nodes_removed);
  }
  bool operator==(const ClusterNodeStatus&) const = default;
};

// PATCH /config body: `options` holds mutable configuration keys (see docs/configuration.md).
struct DaemonConfigurationSpec {
  ConfigurationMap options;
  std::string policy_enforcement;  // default | always | never
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("options", s.options);
    v("policy-enforcement", s.policy_enforcement);
  }
  static Status validate(const DaemonConfigurationSpec& s, const std::string& path);
  bool operator==(const DaemonConfigurationSpec&) const = default;
};

struct DaemonConfigurationStatus {
  std::optional<DaemonConfigurationSpec> realized;  // mutable options in force
  ConfigurationMap immutable;                       // every other key
  // Keys of the config file or directory (a cilium-config ConfigMap) the agent does not
  // implement and ignored, with their values as written.
  ConfigurationMap ignored_options;
  std::optional<NodeAddressing> addressing;
  std::map<std::string, Json> daemon_configuration_map;  // every key with its typed value
  std::string ipam_mode;
  std::string datapath_mode;
  int64_t device_mtu = 0;
  int64_t route_mtu = 0;
  bool masquerade = false;
  std::string k8s_configuration;
  std::string k8s_endpoint;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("realized", s.realized);
    v("immutable", s.immutable);
    v("ignoredOptions", s.ignored_options);
    v("addressing", s.addressing);
    v("daemonConfigurationMap", s.daemon_configuration_map);
    v("ipam-mode", s.ipam_mode);
    v("datapathMode", s.datapath_mode);
    v("deviceMTU", s.device_mtu);
    v("routeMTU", s.route_mtu);
    v("masquerade", s.masquerade);
    v("k8s-configuration", s.k8s_configuration);
    v("k8s-endpoint", s.k8s_endpoint);
  }
  bool operator==(const DaemonConfigurationStatus&) const = default;
};

struct DaemonConfiguration {
  std::optional<DaemonConfigurationSpec> spec;
  std::optional<DaemonConfigurationStatus> status;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("spec", s.spec);
    v("status", s.status);
  }
  bool operator==(const DaemonConfiguration&) const = default;
};

// ---- Endpoints --------------------------------------------------------------------------------

struct AddressPair {
  std::string ipv4;
  std::string ipv4_expiration_uuid;
  std::string ipv4_pool_name;
  std::string ipv6;
  std::string ipv6_expiration_uuid;
  std::string ipv6_pool_name;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("ipv4", s.ipv4);
    v("ipv4-expiration-uuid", s.ipv4_expiration_uuid);
    v("ipv4-pool-name", s.ipv4_pool_name);
    v("ipv6", s.ipv6);
    v("ipv6-expiration-uuid", s.ipv6_expiration_uuid);
    v("ipv6-pool-name", s.ipv6_pool_name);
  }
  static Status validate(const AddressPair& a, const std::string& path);
  bool operator==(const AddressPair&) const = default;
};

struct EndpointDatapathConfiguration {
  bool require_arp_passthrough = false;
  bool require_egress_prog = false;
  bool external_ipam = false;
  std::optional<bool> require_routing;  // absent = true
  bool install_endpoint_route = false;
  bool disable_sip_verification = false;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("require-arp-passthrough", s.require_arp_passthrough);
    v("require-egress-prog", s.require_egress_prog);
    v("external-ipam", s.external_ipam);
    v("require-routing", s.require_routing);
    v("install-endpoint-route", s.install_endpoint_route);
    v("disable-sip-verification", s.disable_sip_verification);
  }
  bool operator==(const EndpointDatapathConfiguration&) const = default;
};

// PUT/PATCH /endpoint/{id} body, as cilium-cni sends it.
struct EndpointChangeRequest {
  int64_t id = 0;  // 0 = let the agent choose
  std::string container_id;
  std::string container_name;
  std::string container_interface_name;  // name inside the pod, e.g. eth0
  std::string docker_endpoint_id;
  std::string docker_network_id;
  Labels labels;
  std::string interface_name;  // host side of the veth
  int64_t interface_index = 0;
  EndpointState state = EndpointState::kWaitingForIdentity;
  std::string mac;       // pod side
  std::string host_mac;  // host side
  std::optional<AddressPair> addressing;
  std::string k8s_pod_name;
  std::string k8s_namespace;
  std::string k8s_uid;
  int64_t datapath_map_id = 0;
  std::optional<bool> policy_enabled;
  int64_t pid = 0;
  bool sync_build_endpoint = false;  // return only after the first regeneration
  uint64_t netns_cookie = 0;
  std::string netns;  // extension: path of the pod's network namespace (CNI_NETNS)
  std::optional<EndpointDatapathConfiguration> datapath_configuration;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("id", s.id);
    v("container-id", s.container_id);
    v("container-name", s.container_name);
    v("container-interface-name", s.container_interface_name);
    v("docker-endpoint-id", s.docker_endpoint_id);
    v("docker-network-id", s.docker_network_id);
    v("labels", s.labels);
    v("interface-name", s.interface_name);
    v("interface-index", s.interface_index);
    v.required("state", s.state);
    v("mac", s.mac);
    v("host-mac", s.host_mac);
    v("addressing", s.addressing);
    v("k8s-pod-name", s.k8s_pod_name);
    v("k8s-namespace", s.k8s_namespace);
    v("k8s-uid", s.k8s_uid);
    v("datapath-map-id", s.datapath_map_id);
    v("policy-enabled", s.policy_enabled);
    v("pid", s.pid);
    v("sync-build-endpoint", s.sync_build_endpoint);
    v("netns-cookie", s.netns_cookie);
    v("netns", s.netns);
    v("datapath-configuration", s.datapath_configuration);
  }
  static Status validate(const EndpointChangeRequest& r, const std::string& path);
  bool operator==(const EndpointChangeRequest&) const = default;
};

struct LabelConfigurationSpec {
  Labels user;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("user", s.user);
  }
  bool operator==(const LabelConfigurationSpec&) const = default;
};

struct LabelConfigurationStatus {
  std::optional<LabelConfigurationSpec> realized;
  Labels security_relevant;
  Labels derived;
  Labels disabled;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("realized", s.realized);
    v("security-relevant", s.security_relevant);
    v("derived", s.derived);
    v("disabled", s.disabled);
  }
  bool operator==(const LabelConfigurationStatus&) const = default;
};

// GET /endpoint/{id}/labels
struct LabelConfiguration {
  std::optional<LabelConfigurationSpec> spec;
  std::optional<LabelConfigurationStatus> status;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("spec", s.spec);
    v("status", s.status);
  }
  bool operator==(const LabelConfiguration&) const = default;
};

struct EndpointConfigurationSpec {
  ConfigurationMap options;
  std::optional<LabelConfigurationSpec> label_configuration;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("options", s.options);
    v("label-configuration", s.label_configuration);
  }
  bool operator==(const EndpointConfigurationSpec&) const = default;
};

struct EndpointIdentifiers {
  std::string container_id;
  std::string container_name;
  std::string docker_endpoint_id;
  std::string docker_network_id;
  std::string pod_name;  // "namespace/name"
  std::string k8s_pod_name;
  std::string k8s_namespace;
  std::string cni_attachment_id;  // "<container id>:<interface>"
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("container-id", s.container_id);
    v("container-name", s.container_name);
    v("docker-endpoint-id", s.docker_endpoint_id);
    v("docker-network-id", s.docker_network_id);
    v("pod-name", s.pod_name);
    v("k8s-pod-name", s.k8s_pod_name);
    v("k8s-namespace", s.k8s_namespace);
    v("cni-attachment-id", s.cni_attachment_id);
  }
  bool operator==(const EndpointIdentifiers&) const = default;
};

// GET /identity/{id}
struct Identity {
  int64_t id = 0;
  Labels labels;
  std::string labels_sha256;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("id", s.id);
    v("labels", s.labels);
    v("labelsSHA256", s.labels_sha256);
  }
  bool operator==(const Identity&) const = default;
};

struct EndpointNetworking {
  std::vector<AddressPair> addressing;
  std::optional<NodeAddressing> host_addressing;
  std::string host_mac;
  std::string mac;
  std::string interface_name;
  int64_t interface_index = 0;
  std::string container_interface_name;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("addressing", s.addressing);
    v("host-addressing", s.host_addressing);
    v("host-mac", s.host_mac);
    v("mac", s.mac);
    v("interface-name", s.interface_name);
    v("interface-index", s.interface_index);
    v("container-interface-name", s.container_interface_name);
  }
  bool operator==(const EndpointNetworking&) const = default;
};

struct EndpointPolicy {
  int64_t policy_revision = 0;
  int64_t id = 0;  // the endpoint's own identity
  std::optional<EndpointPolicyEnabled> policy_enabled;
  int64_t build = 0;
  std::vector<int64_t> allowed_ingress_identities;
  std::vector<int64_t> denied_ingress_identities;
  std::vector<int64_t> allowed_egress_identities;
  std::vector<int64_t> denied_egress_identities;
  Json l4;  // L4Policy, passed through as the policy engine renders it
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("policy-revision", s.policy_revision);
    v("id", s.id);
    v("policy-enabled", s.policy_enabled);
    v("build", s.build);
    v("allowed-ingress-identities", s.allowed_ingress_identities);
    v("denied-ingress-identities", s.denied_ingress_identities);
    v("allowed-egress-identities", s.allowed_egress_identities);
    v("denied-egress-identities", s.denied_egress_identities);
    v("l4", s.l4);
  }
  bool operator==(const EndpointPolicy&) const = default;
};

struct EndpointPolicyStatus {
  std::optional<EndpointPolicy> spec;
  std::optional<EndpointPolicy> realized;
  int64_t proxy_policy_revision = 0;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("spec", s.spec);
    v("realized", s.realized);
    v("proxy-policy-revision", s.proxy_policy_revision);
  }
  bool operator==(const EndpointPolicyStatus&) const = default;
};

struct EndpointStatusChange {
  std::string timestamp;
  std::string code;  // ok | failed
  std::string message;
  std::optional<EndpointState> state;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("timestamp", s.timestamp);
    v("code", s.code);
    v("message", s.message);
    v("state", s.state);
  }
  bool operator==(const EndpointStatusChange&) const = default;
};

// GET /endpoint/{id}/healthz (cilium-cni CHECK)
struct EndpointHealth {
  std::optional<EndpointHealthStatus> overall_health;
  std::optional<EndpointHealthStatus> bpf;
  std::optional<EndpointHealthStatus> policy;
  bool connected = false;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("overallHealth", s.overall_health);
    v("bpf", s.bpf);
    v("policy", s.policy);
    v("connected", s.connected);
  }
  bool operator==(const EndpointHealth&) const = default;
};

struct Port {
  std::string protocol;  // TCP UDP SCTP ICMP ICMPV6 ANY
  int64_t port = 0;
  std::string name;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("protocol", s.protocol);
    v("port", s.port);
    v("name", s.name);
  }
  bool operator==(const Port&) const = default;
};

struct EndpointStatus {
  std::optional<EndpointIdentifiers> external_identifiers;
  std::optional<Identity> identity;
  std::optional<LabelConfigurationStatus> labels;
  std::optional<EndpointConfigurationSpec> realized;
  std::optional<EndpointNetworking> networking;
  std::optional<EndpointPolicyStatus> policy;
  std::vector<EndpointStatusChange> log;
  EndpointState state = EndpointState::kNotReady;
  std::optional<EndpointHealth> health;
  std::vector<Port> named_ports;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("external-identifiers", s.external_identifiers);
    v("identity", s.identity);
    v("labels", s.labels);
    v("realized", s.realized);
    v("networking", s.networking);
    v("policy", s.policy);
    v("log", s.log);
    v.required("state", s.state);
    v("health", s.health);
    v("namedPorts", s.named_ports);
  }
  bool operator==(const EndpointStatus&) const = default;
};

// GET /endpoint, GET /endpoint/{id}
struct Endpoint {
  int64_t id = 0;
  std::optional<EndpointConfigurationSpec> spec;
  std::optional<EndpointStatus> status;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("id", s.id);
    v("spec", s.spec);
    v("status", s.status);
  }
  bool operator==(const Endpoint&) const = default;
};

// ---- IPAM ---------------------------------------------------------------------------------------

struct IpamAddressResponse {
  std::string ip;
  std::string gateway;  // the router address
  std::vector<std::string> cidrs;
  std::string master_mac;
  std::string expiration_uuid;
  std::string interface_number;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("ip", s.ip);
    v("gateway", s.gateway);
    v("cidrs", s.cidrs);
    v("master-mac", s.master_mac);
    v("expiration-uuid", s.expiration_uuid);
    v("interface-number", s.interface_number);
  }
  bool operator==(const IpamAddressResponse&) const = default;
};

// POST /ipam
struct IpamResponse {
  AddressPair address;
  std::optional<IpamAddressResponse> ipv4;
  std::optional<IpamAddressResponse> ipv6;
  NodeAddressing host_addressing;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v.required("address", s.address);
    v("ipv4", s.ipv4);
    v("ipv6", s.ipv6);
    v.required("host-addressing", s.host_addressing);
  }
  bool operator==(const IpamResponse&) const = default;
};

// ---- Policy -------------------------------------------------------------------------------------

// GET/PUT/DELETE /policy
struct Policy {
  int64_t revision = 0;
  std::string policy;  // the rules as JSON text
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("revision", s.revision);
    v("policy", s.policy);
  }
  bool operator==(const Policy&) const = default;
};

struct SelectorIdentityMapping {
  std::string selector;
  std::vector<int64_t> identities;
  int64_t users = 0;
  Labels labels;  // labels of the rule(s) the selector comes from
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("selector", s.selector);
    v("identities", s.identities);
    v("users", s.users);
    v("labels", s.labels);
  }
  bool operator==(const SelectorIdentityMapping&) const = default;
};
using SelectorCache = std::vector<SelectorIdentityMapping>;  // GET /policy/selectors

// ---- Maps ---------------------------------------------------------------------------------------

struct BpfMapEntry {
  std::string key;
  std::string value;
  std::string desired_action;  // ok | insert | delete
  std::string last_error;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("key", s.key);
    v("value", s.value);
    v("desired-action", s.desired_action);
    v("last-error", s.last_error);
  }
  bool operator==(const BpfMapEntry&) const = default;
};

// GET /map/{name}
struct BpfMap {
  std::string path;
  std::vector<BpfMapEntry> cache;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("path", s.path);
    v("cache", s.cache);
  }
  bool operator==(const BpfMap&) const = default;
};

// GET /map
struct BpfMapList {
  std::vector<BpfMap> maps;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("maps", s.maps);
  }
  bool operator==(const BpfMapList&) const = default;
};

// ---- Debug info ---------------------------------------------------------------------------------

// GET /debuginfo
struct DebugInfo {
  std::string cilium_version;
  std::string kernel_version;
  std::optional<StatusResponse> cilium_status;
  std::vector<Endpoint> endpoint_list;
  std::optional<Policy> policy;
  std::vector<std::string> environment_variables;
  std::map<std::string, std::string> subsystem;  // module -> free-form report
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("cilium-version", s.cilium_version);
    v("kernel-version", s.kernel_version);
    v("cilium-status", s.cilium_status);
    v("endpoint-list", s.endpoint_list);
    v("policy", s.policy);
    v("environment-variables", s.environment_variables);
    v("subsystem", s.subsystem);
  }
  bool operator==(const DebugInfo&) const = default;
};

// ---- Monitor (extension: GET /monitor streams one MonitorEvent per line) ------------------------

struct MonitorTuple {
  std::string src;  // address
  std::string dst;
  int64_t sport = 0;
  int64_t dport = 0;
  std::string protocol;   // tcp udp icmp icmpv6 sctp, or the number
  std::string tcp_flags;  // "SYN, ACK"
  int64_t icmp_type = 0;
  int64_t icmp_code = 0;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("src", s.src);
    v("dst", s.dst);
    v("sport", s.sport);
    v("dport", s.dport);
    v("protocol", s.protocol);
    v("tcp-flags", s.tcp_flags);
    v("icmp-type", s.icmp_type);
    v("icmp-code", s.icmp_code);
  }
  bool operator==(const MonitorTuple&) const = default;
};

// One datapath or agent event. `type` says which fields are meaningful:
//   drop            drop-reason, drop-reason-desc, file, line
//   trace           observation-point, ct-state
//   policy-verdict  verdict, match-type, proxy-port, direction
//   debug, agent    message
//   lost            lost (events dropped before this one)
struct MonitorEvent {
  std::string type;
  std::string timestamp;  // RFC 3339, nanoseconds
  int64_t cpu = 0;
  int64_t source = 0;  // endpoint id the program ran for
  int64_t ifindex = 0;
  int64_t length = 0;  // original packet length
  int64_t src_identity = 0;
  int64_t dst_identity = 0;
  int64_t dst_endpoint = 0;
  std::string direction;  // ingress | egress
  std::string ct_state;   // new established reply related reopened
  int64_t drop_reason = 0;
  std::string drop_reason_desc;
  std::string file;
  int64_t line = 0;
  std::string observation_point;  // to-endpoint from-endpoint to-stack ...
  std::string verdict;            // allow deny redirect audit
  std::string match_type;         // none l3-only l3-l4 l4-only all l3-proto proto-only
  int64_t proxy_port = 0;
  std::optional<MonitorTuple> tuple;
  std::string message;
  int64_t lost = 0;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v.required("type", s.type);
    v("timestamp", s.timestamp);
    v("cpu", s.cpu);
    v("source", s.source);
    v("ifindex", s.ifindex);
    v("length", s.length);
    v("src-identity", s.src_identity);
    v("dst-identity", s.dst_identity);
    v("dst-endpoint", s.dst_endpoint);
    v("direction", s.direction);
    v("ct-state", s.ct_state);
    v("drop-reason", s.drop_reason);
    v("drop-reason-desc", s.drop_reason_desc);
    v("file", s.file);
    v("line", s.line);
    v("observation-point", s.observation_point);
    v("verdict", s.verdict);
    v("match-type", s.match_type);
    v("proxy-port", s.proxy_port);
    v("tuple", s.tuple);
    v("message", s.message);
    v("lost", s.lost);
  }
  bool operator==(const MonitorEvent&) const = default;
};

// ---- Endpoint references ------------------------------------------------------------------------

// The {id} of /endpoint/{id}: `[prefix:]value`.
struct EndpointRef {
  enum class Kind {
    kCiliumLocal,     // "42", "cilium-local:42"
    kContainerId,     // "container-id:<id>"
    kContainerName,   // "container-name:<name>"
    kPodName,         // "pod-name:<namespace>/<name>" (also "<namespace>:<name>")
    kDockerEndpoint,  // "docker-endpoint:<id>"
    kCniAttachment,   // "cni-attachment-id:<container id>:<interface>"
  };
  Kind kind = Kind::kCiliumLocal;
  int64_t local_id = 0;  // kCiliumLocal: 1..65535
  std::string value;     // the id, container id, name... (kPodName: "namespace/name")
  std::string pod_namespace;
  std::string pod_name;
  std::string interface;  // kCniAttachment

  // The canonical text form (what parse() accepts and the client sends).
  std::string toString() const;
  bool operator==(const EndpointRef&) const = default;
};

// kInvalidArgument naming the problem ("endpoint id 'x': unknown prefix 'x'").
Result<EndpointRef> parseEndpointRef(std::string_view text);

// Checks a MAC written as six colon-separated hex octets.
bool isMac(std::string_view s);

// ---- Services (/service, /service/{id}; served by agent/service) ---------------------------

struct FrontendAddress {
  std::string ip;
  int64_t port = 0;
  std::string protocol;  // TCP, UDP
  std::string scope;     // external, internal
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("ip", s.ip);
    v("port", s.port);
    v("protocol", s.protocol);
    v("scope", s.scope);
  }
  bool operator==(const FrontendAddress&) const = default;
};

struct BackendAddress {
  std::string ip;
  int64_t port = 0;
  std::string node_name;
  std::string state;  // active, terminating
  bool preferred = false;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v.required("ip", s.ip);
    v("port", s.port);
    v("nodeName", s.node_name);
    v("state", s.state);
    v("preferred", s.preferred);
  }
  bool operator==(const BackendAddress&) const = default;
};

struct ServiceSpecFlags {
  std::string type;                // ClusterIP, NodePort, ExternalIPs, LoadBalancer
  std::string ext_traffic_policy;  // Cluster, Local
  std::string name;
  std::string namespace_;
  bool session_affinity = false;         // extension
  int64_t session_affinity_timeout = 0;  // extension, seconds
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("type", s.type);
    v("extTrafficPolicy", s.ext_traffic_policy);
    v("name", s.name);
    v("namespace", s.namespace_);
    v("sessionAffinity", s.session_affinity);
    v("sessionAffinityTimeout", s.session_affinity_timeout);
  }
  bool operator==(const ServiceSpecFlags&) const = default;
};

struct ServiceSpec {
  int64_t id = 0;
  FrontendAddress frontend_address;
  std::vector<BackendAddress> backend_addresses;
  std::optional<ServiceSpecFlags> flags;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("id", s.id);
    v.required("frontend-address", s.frontend_address);
    v("backend-addresses", s.backend_addresses);
    v("flags", s.flags);
  }
  bool operator==(const ServiceSpec&) const = default;
};

struct ServiceStatus {
  std::optional<ServiceSpec> realized;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("realized", s.realized);
  }
  bool operator==(const ServiceStatus&) const = default;
};

struct Service {
  std::optional<ServiceSpec> spec;
  std::optional<ServiceStatus> status;
  template <class S, class V>
  static void fields(S& s, V& v) {
    v("spec", s.spec);
    v("status", s.status);
  }
  bool operator==(const Service&) const = default;
};

}  // namespace cilium::api
