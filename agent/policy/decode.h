// Decoding of policy text into the rule model: YAML or JSON, one document or many ("---"),
// whole Kubernetes objects (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy,
// networking.k8s.io/v1 NetworkPolicy, and List objects of those) and bare arrays of Cilium rules
// (what `cilium-dbg policy import` and `PUT /v1/policy` carry). Untrusted input: every error is
// kInvalidArgument (kUnimplemented for recognised but unsupported fields) and names the field,
// e.g. `spec.ingress[0].toPorts[0].ports[0].port: "99999" is not a valid port`. Never throws.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/policy/rule.h"

namespace cilium::policy {

inline constexpr std::string_view kKindCnp = "CiliumNetworkPolicy";
inline constexpr std::string_view kKindCcnp = "CiliumClusterwideNetworkPolicy";
inline constexpr std::string_view kKindKnp = "NetworkPolicy";

// The rules of one Kubernetes object, or of one bare rule array (kind "").
struct PolicyObject {
  std::string kind;
  std::string namespace_name;  // "" for cluster-wide objects and bare rules
  std::string name;
  std::string uid;
  std::vector<Rule> rules;
  std::vector<std::string> warnings;  // e.g. L7 rules that are not enforced yet

  // The labels that identify the object's rules for replacement and deletion (derived-from,
  // name, namespace); empty for bare rules.
  labels::Labels objectLabels() const;
};

// Limits on untrusted text, checked before any parsing.
inline constexpr size_t kMaxPolicyBytes = 8 << 20;
inline constexpr int kMaxNestingDepth = 64;

// Decodes policy text. All or nothing: the first error fails the whole text.
Result<std::vector<PolicyObject>> decodePolicies(std::string_view text);

// Decodes one already parsed document (a policy object, a List of them, or bare rules), as
// decodePolicies does for each document of a text (the Kubernetes watcher's path).
Result<std::vector<PolicyObject>> decodePolicyJson(const nlohmann::json& document);

// Decodes a JSON array of Cilium rules (no namespace scoping: selectors mean what they say).
// Errors name the element: `[2].ingress[0].fromEntities[0]: unknown entity "wrld"`.
Result<std::vector<Rule>> decodeRules(std::string_view json_text);
Result<std::vector<Rule>> decodeRules(const nlohmann::json& array, std::string_view path);

// The stand-in for a policy object that cannot be decoded (or enforced): it fails closed. The
// endpoints the object would select are put in default deny, with no allow of its own, in the
// directions it names (both where it names none that can be read), so only what other rules
// allow stays allowed; where it has deny rules (ingressDeny, egressDeny) or a spec that cannot
// be read, everything in that direction is denied. Selection uses what of the object can be
// decoded: each spec's endpointSelector (CNP, CCNP) or spec.podSelector (KNP); where that
// cannot be decoded, every pod of the object's namespace (a CCNP: every pod). The rules carry
// the object's labels, so the object's next valid version replaces them, and a description
// "fail-closed: <reason>". kInvalidArgument when the object cannot be named (kind of a policy,
// metadata.name).
Result<PolicyObject> failClosedPolicy(const nlohmann::json& object, std::string_view reason);

// yaml::toJson (agent/common/yaml.h) with the policy limits above.
Result<std::vector<nlohmann::json>> yamlToJson(std::string_view text);

}  // namespace cilium::policy
