// Labels derived from Kubernetes pods, namespaces and policy objects.
#include "agent/labels/k8s.h"

namespace cilium::labels {

Labels podLabels(const PodInfo& pod) {
  Labels out;
  for (const auto& [k, v] : pod.labels) out.set(Label(Source::kK8s, k, v));
  out.set(Label(Source::kK8s, std::string(kPodNamespaceLabel), pod.namespace_name));
  auto ns_labels = pod.namespace_labels;
  ns_labels.emplace(std::string(kNamespaceNameLabel), pod.namespace_name);
  for (const auto& [k, v] : ns_labels)
    out.set(Label(Source::kK8s, std::string(kNamespaceLabelsPrefix) + k, v));
  if (!pod.service_account.empty())
    out.set(Label(Source::kK8s, std::string(kServiceAccountLabel), pod.service_account));
  if (!pod.cluster.empty()) out.set(Label(Source::kK8s, std::string(kClusterLabel), pod.cluster));
  return out;
}

Labels policyLabels(std::string_view kind, std::string_view namespace_name, std::string_view name,
                    std::string_view uid) {
  Labels out;
  out.set(Label(Source::kK8s, std::string(kPolicyDerivedFromLabel), std::string(kind)));
  out.set(Label(Source::kK8s, std::string(kPolicyNameLabel), std::string(name)));
  if (!namespace_name.empty())
    out.set(Label(Source::kK8s, std::string(kPolicyNamespaceLabel), std::string(namespace_name)));
  if (!uid.empty()) out.set(Label(Source::kK8s, std::string(kPolicyUidLabel), std::string(uid)));
  return out;
}

}  // namespace cilium::labels
