// Labels that Cilium derives from Kubernetes objects: a pod's full label set (pod labels plus
// namespace, namespace labels, service account and cluster) and the labels of policy rules that
// come from Kubernetes objects.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/labels/labels.h"

namespace cilium::labels {

inline constexpr std::string_view kPodNamespaceLabel = "io.kubernetes.pod.namespace";
inline constexpr std::string_view kServiceAccountLabel = "io.cilium.k8s.policy.serviceaccount";
inline constexpr std::string_view kClusterLabel = "io.cilium.k8s.policy.cluster";
// Namespace labels appear on pods as io.cilium.k8s.namespace.labels.<key>.
inline constexpr std::string_view kNamespaceLabelsPrefix = "io.cilium.k8s.namespace.labels.";
// Kubernetes (>= 1.21) puts this label on every namespace, with the namespace name as value.
inline constexpr std::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";

// Labels on rules made from Kubernetes objects, so they can be replaced and deleted by name.
inline constexpr std::string_view kPolicyNameLabel = "io.cilium.k8s.policy.name";
inline constexpr std::string_view kPolicyNamespaceLabel = "io.cilium.k8s.policy.namespace";
inline constexpr std::string_view kPolicyDerivedFromLabel = "io.cilium.k8s.policy.derived-from";
inline constexpr std::string_view kPolicyUidLabel = "io.cilium.k8s.policy.uid";

inline constexpr std::string_view kDefaultClusterName = "default";

struct PodInfo {
  std::map<std::string, std::string> labels;            // metadata.labels of the pod
  std::string namespace_name;                           // metadata.namespace
  std::map<std::string, std::string> namespace_labels;  // metadata.labels of the namespace
  std::string service_account;                          // spec.serviceAccountName; "" = none
  std::string cluster = std::string(kDefaultClusterName);
};

// The pod's labels as an endpoint carries them, all with source k8s: its own labels,
// io.kubernetes.pod.namespace, io.cilium.k8s.namespace.labels.<k> for each namespace label
// (kubernetes.io/metadata.name=<namespace> included even when the caller's map lacks it, as the
// apiserver always sets it), io.cilium.k8s.policy.serviceaccount when set, and
// io.cilium.k8s.policy.cluster. Apply LabelFilter before allocating an identity.
Labels podLabels(const PodInfo& pod);

// Kubernetes label syntax (k8s.io/apimachinery IsQualifiedName / IsValidLabelValue): nullopt
// when valid, else why not. A key is an optional DNS-subdomain prefix (<= 253 characters) and
// '/', then a name of 1-63 characters [A-Za-z0-9][-A-Za-z0-9_.]* ending in an alphanumeric. A
// value is empty or 1-63 characters of the same form as a name.
std::optional<std::string> labelKeyError(std::string_view key);
std::optional<std::string> labelValueError(std::string_view value);

// Rule labels for a policy object: derived-from (the kind), name, namespace (omitted when
// empty, as for cluster-wide policies) and uid (omitted when empty), all with source k8s.
Labels policyLabels(std::string_view kind, std::string_view namespace_name, std::string_view name,
                    std::string_view uid);

}  // namespace cilium::labels
