// Labels derived from Kubernetes pods, namespaces and policy objects.
#include "agent/labels/k8s.h"

namespace cilium::labels {

namespace {

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool isNamePart(std::string_view s) {
  if (s.empty() || !isAlnum(s.front()) || !isAlnum(s.back())) return false;
  for (char c : s)
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

// RFC 1123 subdomain: dot-separated labels of lowercase alphanumerics and '-', each starting and
// ending with an alphanumeric; at most 253 characters.
bool isDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (size_t start = 0;;) {
    size_t dot = s.find('.', start);
    std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || !isLowerAlnum(label.front()) || !isLowerAlnum(label.back())) return false;
    for (char c : label)
      if (!isLowerAlnum(c) && c != '-') return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

constexpr std::string_view kNameRule =
    "1-63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric";

}  // namespace

std::optional<std::string> labelKeyError(std::string_view key) {
  std::string_view name = key;
  if (auto slash = key.find('/'); slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos)
      return std::string("a label key has at most one '/'");
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!isDnsSubdomain(prefix))
      return std::string(
          "the prefix before '/' must be a DNS subdomain (lowercase alphanumerics, '-' and '.', at "
          "most 253 characters)");
  }
  if (name.size() > 63 || !isNamePart(name)) return "the name must be " + std::string(kNameRule);
  return std::nullopt;
}

std::optional<std::string> labelValueError(std::string_view value) {
  if (value.empty()) return std::nullopt;
  if (value.size() > 63 || !isNamePart(value))
    return "a label value must be empty or " + std::string(kNameRule);
  return std::nullopt;
}

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
