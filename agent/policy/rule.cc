// The rule model: names, defaults and the Cilium JSON form of rules.
#include "agent/policy/rule.h"

#include <array>

#include <nlohmann/json.hpp>

namespace cilium::policy {

namespace {

constexpr std::array<std::pair<Entity, std::string_view>, 13> kEntityNames = {{
    {Entity::kAll, "all"},
    {Entity::kWorld, "world"},
    {Entity::kWorldIpv4, "world-ipv4"},
    {Entity::kWorldIpv6, "world-ipv6"},
    {Entity::kCluster, "cluster"},
    {Entity::kHost, "host"},
    {Entity::kRemoteNode, "remote-node"},
    {Entity::kKubeApiServer, "kube-apiserver"},
    {Entity::kInit, "init"},
    {Entity::kHealth, "health"},
    {Entity::kUnmanaged, "unmanaged"},
    {Entity::kIngress, "ingress"},
    {Entity::kNone, "none"},
}};

nlohmann::json portRuleJson(const PortRule& pr, bool deny) {
  auto ports = nlohmann::json::array();
  for (const auto& p : pr.ports) {
    nlohmann::json pj;
    pj["port"] = p.name.empty() ? std::to_string(p.port) : p.name;
    if (p.end_port > p.port) pj["endPort"] = p.end_port;
    pj["protocol"] = protocolName(p.protocol);
    ports.push_back(std::move(pj));
  }
  nlohmann::json j = {{"ports", std::move(ports)}};
  if (!deny && !pr.rules.empty()) {
    nlohmann::json rules = nlohmann::json::object();
    if (!pr.rules.http.empty()) {
      auto http = nlohmann::json::array();
      for (const auto& h : pr.rules.http) {
        nlohmann::json hj = nlohmann::json::object();
        if (!h.method.empty()) hj["method"] = h.method;
        if (!h.path.empty()) hj["path"] = h.path;
        if (!h.host.empty()) hj["host"] = h.host;
        if (!h.headers.empty()) hj["headers"] = h.headers;
        if (!h.header_matches.empty()) {
          auto hm = nlohmann::json::array();
          for (const auto& m : h.header_matches) {
            nlohmann::json mj = {{"name", m.name}};
            if (!m.value.empty()) mj["value"] = m.value;
            if (m.mismatch != HeaderMatch::Mismatch::kNone) mj["mismatch"] = mismatchName(m.mismatch);
            hm.push_back(std::move(mj));
          }
          hj["headerMatches"] = std::move(hm);
        }
        http.push_back(std::move(hj));
      }
      rules["http"] = std::move(http);
    }
    if (!pr.rules.dns.empty()) {
      auto dns = nlohmann::json::array();
      for (const auto& d : pr.rules.dns) {
        nlohmann::json dj = nlohmann::json::object();
        if (!d.match_name.empty()) dj["matchName"] = d.match_name;
        if (!d.match_pattern.empty()) dj["matchPattern"] = d.match_pattern;
        dns.push_back(std::move(dj));
      }
      rules["dns"] = std::move(dns);
    }
    j["rules"] = std::move(rules);
  }
  return j;
}

nlohmann::json peerRuleJson(const PeerRule& pr, Direction d, bool deny) {
  bool in = d == Direction::kIngress;
  nlohmann::json j = nlohmann::json::object();
  if (!pr.endpoints.empty()) {
    auto arr = nlohmann::json::array();
    for (const auto& s : pr.endpoints) arr.push_back(s.toJson());
    j[in ? "fromEndpoints" : "toEndpoints"] = std::move(arr);
  }
  if (!pr.entities.empty()) {
    auto arr = nlohmann::json::array();
    for (auto e : pr.entities) arr.push_back(entityName(e));
    j[in ? "fromEntities" : "toEntities"] = std::move(arr);
  }
  if (!pr.cidrs.empty()) {
    auto arr = nlohmann::json::array();
    for (const auto& c : pr.cidrs) arr.push_back(c.toString());
    j[in ? "fromCIDR" : "toCIDR"] = std::move(arr);
  }
  if (!pr.cidr_sets.empty()) {
    auto arr = nlohmann::json::array();
    for (const auto& c : pr.cidr_sets) {
      nlohmann::json cj = {{"cidr", c.cidr.toString()}};
      if (!c.except.empty()) {
        auto ex = nlohmann::json::array();
        for (const auto& e : c.except) ex.push_back(e.toString());
        cj["except"] = std::move(ex);
      }
      if (c.selects_pods) cj["selectsPods"] = true;
      arr.push_back(std::move(cj));
    }
    j[in ? "fromCIDRSet" : "toCIDRSet"] = std::move(arr);
  }
  if (!pr.fqdns.empty()) {
    auto arr = nlohmann::json::array();
    for (const auto& f : pr.fqdns)
      arr.push_back(f.match_name.empty() ? nlohmann::json{{"matchPattern", f.match_pattern}}
                                         : nlohmann::json{{"matchName", f.match_name}});
    j["toFQDNs"] = std::move(arr);
  }
  if (!pr.ports.empty()) {
    auto arr = nlohmann::json::array();
    for (const auto& p : pr.ports) arr.push_back(portRuleJson(p, deny));
    j["toPorts"] = std::move(arr);
  }
  return j;
}

}  // namespace

std::string_view protocolName(Protocol p) {
  switch (p) {
    case Protocol::kAny: return "ANY";
    case Protocol::kTcp: return "TCP";
    case Protocol::kUdp: return "UDP";
    case Protocol::kSctp: return "SCTP";
  }
  return "ANY";
}

std::string_view entityName(Entity e) {
  for (const auto& [ent, name] : kEntityNames)
    if (ent == e) return name;
  return "none";
}

std::optional<Entity> parseEntity(std::string_view name) {
  for (const auto& [ent, n] : kEntityNames)
    if (n == name) return ent;
  return std::nullopt;
}

bool Rule::enforces(Direction d) const {
  const auto& flag = d == Direction::kIngress ? default_deny_ingress : default_deny_egress;
  return flag.value_or(!allows(d).empty() || !denies(d).empty());
}

std::string_view mismatchName(HeaderMatch::Mismatch m) {
  switch (m) {
    case HeaderMatch::Mismatch::kNone: return "";
    case HeaderMatch::Mismatch::kLog: return "LOG";
    case HeaderMatch::Mismatch::kAdd: return "ADD";
    case HeaderMatch::Mismatch::kDelete: return "DELETE";
    case HeaderMatch::Mismatch::kReplace: return "REPLACE";
  }
  return "";
}

bool Rule::hasL7() const {
  for (const auto* list : {&ingress, &egress})
    for (const auto& pr : *list)
      for (const auto& port : pr.ports)
        if (!port.rules.empty()) return true;
  return false;
}

std::vector<IpPrefix> Rule::prefixes() const {
  std::vector<IpPrefix> out;
  for (const auto* list : {&ingress, &ingress_deny, &egress, &egress_deny}) {
    for (const auto& pr : *list) {
      out.insert(out.end(), pr.cidrs.begin(), pr.cidrs.end());
      for (const auto& cs : pr.cidr_sets) {
        out.push_back(cs.cidr);
        out.insert(out.end(), cs.except.begin(), cs.except.end());
      }
    }
  }
  return out;
}

nlohmann::json Rule::toJson() const {
  nlohmann::json j = nlohmann::json::object();
  j["endpointSelector"] = endpoint_selector.toJson();
  auto list = [&](const std::vector<PeerRule>& rules, Direction d, bool deny, const char* key) {
    if (rules.empty()) return;
    auto arr = nlohmann::json::array();
    for (const auto& r : rules) arr.push_back(peerRuleJson(r, d, deny));
    j[key] = std::move(arr);
  };
  list(ingress, Direction::kIngress, false, "ingress");
  list(ingress_deny, Direction::kIngress, true, "ingressDeny");
  list(egress, Direction::kEgress, false, "egress");
  list(egress_deny, Direction::kEgress, true, "egressDeny");
  if (default_deny_ingress || default_deny_egress) {
    nlohmann::json dd = nlohmann::json::object();
    if (default_deny_ingress) dd["ingress"] = *default_deny_ingress;
    if (default_deny_egress) dd["egress"] = *default_deny_egress;
    j["enableDefaultDeny"] = std::move(dd);
  }
  j["labels"] = labels.toJson();
  if (!description.empty()) j["description"] = description;
  return j;
}

}  // namespace cilium::policy
