// Parsing the ip-masq-agent configuration file.
#include "agent/service/ip_masq_agent.h"

#include <nlohmann/json.hpp>

#include "agent/common/yaml.h"

namespace cilium::service {
namespace {

// Kubernetes ip-masq-agent's and Cilium's defaults for an empty list.
constexpr std::string_view kDefaultNonMasq[] = {
    "10.0.0.0/8",      "172.16.0.0/12",  "192.168.0.0/16", "100.64.0.0/10",
    "192.0.0.0/24",    "192.0.2.0/24",   "192.88.99.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
};
constexpr std::string_view kLinkLocal = "169.254.0.0/16";
constexpr std::string_view kLinkLocal6 = "fe80::/10";

Error invalid(std::string what) {
  return Error(ErrorCode::kInvalidArgument, "ip-masq-agent config: " + std::move(what));
}

}  // namespace

Result<IpMasqAgentConfig> parseIpMasqAgentConfig(std::string_view text) {
  IpMasqAgentConfig cfg;
  // libyaml asserts on a null input pointer, which an empty string_view may carry.
  if (text.empty()) return cfg;
  yaml::Limits limits;
  limits.max_bytes = 1 << 20;
  auto docs = yaml::toJson(text, limits);
  if (!docs.ok()) return invalid(docs.error().message());
  if (docs->empty() || (docs->size() == 1 && (*docs)[0].is_null())) return cfg;
  if (docs->size() != 1) return invalid("more than one document");
  const nlohmann::json& j = (*docs)[0];
  if (!j.is_object()) return invalid("not a mapping");
  for (const auto& [key, value] : j.items()) {
    if (key == "nonMasqueradeCIDRs") {
      if (value.is_null()) continue;
      if (!value.is_array()) return invalid("nonMasqueradeCIDRs is not a list");
      for (const auto& c : value) {
        if (!c.is_string()) return invalid("nonMasqueradeCIDRs: an item is not a string");
        auto p = IpPrefix::parse(c.get<std::string>());
        if (!p.ok()) return invalid("nonMasqueradeCIDRs: " + p.error().message());
        cfg.non_masquerade_cidrs.push_back(*p);
      }
    } else if (key == "masqLinkLocal") {
      if (!value.is_boolean()) return invalid("masqLinkLocal is not a boolean");
      cfg.masq_link_local = value.get<bool>();
    } else if (key == "masqLinkLocalIPv6") {
      if (!value.is_boolean()) return invalid("masqLinkLocalIPv6 is not a boolean");
      cfg.masq_link_local6 = value.get<bool>();
    } else if (key == "resyncInterval") {
      // Known to ip-masq-agent; nothing here depends on it (the agent re-reads every second).
    } else {
      return invalid("unknown field '" + key + "'");
    }
  }
  return cfg;
}

std::vector<IpPrefix> ipMasqAgentNonMasqueradeV4(const IpMasqAgentConfig& cfg) {
  std::vector<IpPrefix> out;
  for (const auto& p : cfg.non_masquerade_cidrs)
    if (p.family() == IpFamily::kV4) out.push_back(p);
  if (cfg.non_masquerade_cidrs.empty())
    for (auto d : kDefaultNonMasq) out.push_back(*IpPrefix::parse(d));
  if (!cfg.masq_link_local) out.push_back(*IpPrefix::parse(kLinkLocal));
  return out;
}

std::vector<IpPrefix> ipMasqAgentNonMasqueradeV6(const IpMasqAgentConfig& cfg) {
  std::vector<IpPrefix> out;
  for (const auto& p : cfg.non_masquerade_cidrs)
    if (p.family() == IpFamily::kV6) out.push_back(p);
  if (!cfg.masq_link_local6) out.push_back(*IpPrefix::parse(kLinkLocal6));
  return out;
}

}  // namespace cilium::service
