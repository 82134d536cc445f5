// An endpoint: one pod interface the agent enforces policy on. The spec (what the CNI asked for)
// and the state the manager derived from it (identity, enforced policy revision), with the JSON
// form persisted in <state-dir>/endpoints/<id>.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/identity/identity.h"
#include "agent/labels/labels.h"

namespace cilium::endpoint {

enum class State : uint8_t {
  kWaitingForIdentity,  // created, no identity yet
  kRestoring,           // read back from the state directory, not yet regenerated
  kRegenerating,        // its maps are being written
  kReady,               // the datapath enforces its policy
  kDisconnecting,       // being deleted
  kNotReady,            // the last regeneration failed; the previous maps stay in force
};
std::string_view stateName(State s);  // the REST API's names: "ready", "restoring", ...

// A named container port of the pod (Kubernetes containerPorts with a name), for ingress rules
// that name the port ("http" instead of 80).
struct NamedPort {
  std::string name;  // lowercase
  uint16_t port = 0;
  uint8_t protocol = 6;  // IANA number: 6 TCP, 17 UDP, 132 SCTP
  bool operator==(const NamedPort&) const = default;
};

// What the CNI plugin (PUT /endpoint/{id}) says about the endpoint. Immutable after creation
// except for the labels (PATCH).
struct Spec {
  uint16_t id = 0;  // 0: the manager picks the lowest free id
  std::string container_id;
  std::string container_name;
  std::string container_interface_name;  // inside the pod, e.g. eth0
  std::string docker_endpoint_id;
  std::string pod_namespace;
  std::string pod_name;
  std::string k8s_uid;
  std::string interface_name;          // host side of the veth
  int ifindex = 0;                     // host side of the veth, in the node namespace
  std::string mac;                     // pod side
  std::string host_mac;                // host side
  std::optional<IpAddr> ipv4;          // required
  std::optional<IpAddr> ipv6;          // dual stack (enable-ipv6)
  std::string netns;                   // the pod's network namespace path, informational
  labels::Labels labels;               // every label the orchestrator gave
  std::vector<NamedPort> named_ports;  // the pod's named container ports

  // kInvalidArgument naming the field: MACs, ifindex and interface name consistency.
  Status validate() const;
  std::string podRef() const { return pod_namespace + "/" + pod_name; }
};

struct StatusChange {
  std::string timestamp;  // RFC 3339
  bool ok = true;
  std::string message;
  State state = State::kReady;
};

struct Endpoint {
  Spec spec;
  labels::Labels identity_labels;     // security-relevant (LabelFilter), what the identity is of
  labels::Labels information_labels;  // the rest
  identity::NumericIdentity identity = identity::kUnknown;
  State state = State::kWaitingForIdentity;
  uint64_t policy_revision = 0;  // the policy repository revision its maps enforce
  bool ingress_enforced = false;
  bool egress_enforced = false;
  size_t policy_entries = 0;
  std::vector<StatusChange> log;  // newest last, bounded

  uint16_t id() const { return spec.id; }
};

// The persisted form (spec, identity and revision; the log is not kept).
nlohmann::json toStateJson(const Endpoint& ep);
// Errors name the field; `origin` (the file) prefixes them.
Result<Endpoint> fromStateJson(const nlohmann::json& j, const std::string& origin);

}  // namespace cilium::endpoint
