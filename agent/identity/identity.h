// Security identities: numbers that stand for label sets. Reserved numbers have a fixed meaning
// (bpf/abi/identity.h); cluster-scope identities come from an allocator backend from 256 on;
// node-local identities (CIDR prefixes) have IDENTITY_LOCAL_FLAG set and never leave the node.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/common/inet.h"
#include "agent/labels/labels.h"

namespace cilium::identity {

using NumericIdentity = uint32_t;

inline constexpr NumericIdentity kUnknown = IDENTITY_UNKNOWN;
inline constexpr NumericIdentity kHost = IDENTITY_HOST;
inline constexpr NumericIdentity kWorld = IDENTITY_WORLD;
inline constexpr NumericIdentity kUnmanaged = IDENTITY_UNMANAGED;
inline constexpr NumericIdentity kHealth = IDENTITY_HEALTH;
inline constexpr NumericIdentity kInit = IDENTITY_INIT;
inline constexpr NumericIdentity kRemoteNode = IDENTITY_REMOTE_NODE;
inline constexpr NumericIdentity kKubeApiServer = IDENTITY_KUBE_APISERVER;
inline constexpr NumericIdentity kIngress = IDENTITY_INGRESS;
inline constexpr NumericIdentity kWorldIpv4 = IDENTITY_WORLD_IPV4;
inline constexpr NumericIdentity kWorldIpv6 = IDENTITY_WORLD_IPV6;
inline constexpr NumericIdentity kMinCluster = IDENTITY_MIN_CLUSTER;
// Cluster id 0 owns 256..65535 (Cilium's cluster-id shift of 16).
inline constexpr NumericIdentity kMaxCluster = 0xffff;
inline constexpr NumericIdentity kLocalFlag = IDENTITY_LOCAL_FLAG;
inline constexpr NumericIdentity kMinLocal = kLocalFlag | 1;
inline constexpr NumericIdentity kMaxLocal = kLocalFlag | 0xffffff;

struct Identity {
  NumericIdentity id = kUnknown;
  labels::Labels labels;

  bool operator==(const Identity&) const = default;
};

// 1..10 (and 0 for unknown): identities with a fixed number and `reserved:<name>` labels.
bool isReserved(NumericIdentity id);
// Node-local (IDENTITY_LOCAL_FLAG set): CIDR identities.
bool isLocal(NumericIdentity id);

// "host", "world", ... for reserved numbers; "" otherwise.
std::string_view reservedName(NumericIdentity id);
// The reserved number of "host", "world", ...; nullopt for other names.
std::optional<NumericIdentity> reservedByName(std::string_view name);

// Every reserved identity with its labels (reserved:host for 1, ...), in numeric order; 0 is not
// listed.
const std::vector<Identity>& reservedIdentities();

// The reserved identity a label set stands for: a set holding reserved:host is the host; one
// holding reserved:init is init; a set that is exactly one reserved label is that identity.
// nullopt when the set holds no reserved label. A set that mixes reserved labels with others in
// any other way has no identity: kInvalidArgument.
Result<std::optional<NumericIdentity>> reservedForLabels(const labels::Labels& labels);

// Labels of the node-local identity of a CIDR prefix: cidr:<prefix> and reserved:world (so that
// selectors of the world entity also select CIDR identities, as in Cilium).
labels::Labels cidrLabels(const IpPrefix& prefix);
// The prefix of a label set made by cidrLabels(); nullopt when there is no cidr: label.
std::optional<IpPrefix> cidrOfLabels(const labels::Labels& labels);

}  // namespace cilium::identity
