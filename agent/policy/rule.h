// The internal rule model every policy source is translated into (CiliumNetworkPolicy,
// CiliumClusterwideNetworkPolicy, Kubernetes NetworkPolicy, bare Cilium rules). Selectors in it
// are final: namespace scoping has already been applied by the decoder.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/inet.h"
#include "agent/labels/labels.h"
#include "agent/labels/selector.h"

namespace cilium::policy {

enum class Direction : uint8_t { kIngress = 0, kEgress = 1 };  // POLICY_INGRESS / POLICY_EGRESS

enum class Protocol : uint8_t {
  kAny = 0,  // TCP, UDP and SCTP (as Cilium's ANY; ICMP only through L3-only rules)
  kTcp = IPPROTO_TCP,
  kUdp = IPPROTO_UDP,
  kSctp = IPPROTO_SCTP,
};
std::string_view protocolName(Protocol p);  // "ANY", "TCP", "UDP", "SCTP"

struct PortProtocol {
  uint16_t port = 0;      // 0 (with no name): every port of the protocol
  uint16_t end_port = 0;  // > port: the inclusive range [port, end_port]
  std::string name;       // a named port (lowercase IANA service name); port is 0 then
  Protocol protocol = Protocol::kAny;

  bool operator==(const PortProtocol&) const = default;
};

// L7 rules: the ports they sit on are redirected to an L7 proxy, which enforces them (HTTP:
// docs/l7.md; DNS: the DNS proxy). A request is allowed when some rule of the port matches it.
// Cilium's headerMatches entry: a header that must have `value` (present when empty). Without a
// mismatch action a mismatch fails the rule; with one the rule still matches and the proxy acts:
// LOG (reported only), ADD (adds the header with `value`), DELETE (removes it), REPLACE (sets
// it to `value`).
struct HeaderMatch {
  enum class Mismatch : uint8_t { kNone, kLog, kAdd, kDelete, kReplace };
  std::string name, value;
  Mismatch mismatch = Mismatch::kNone;
  bool operator==(const HeaderMatch&) const = default;
};
std::string_view mismatchName(HeaderMatch::Mismatch m);  // "", "LOG", "ADD", "DELETE", "REPLACE"

// method, path and host are RE2 regular expressions matched against the whole value (as Envoy
// matches Cilium's rules); headers are "Name" (present) or "Name: value" (exact value).
struct HttpRule {
  std::string method, path, host;
  std::vector<std::string> headers;
  std::vector<HeaderMatch> header_matches;
  bool operator==(const HttpRule&) const = default;
};
struct DnsRule {
  std::string match_name, match_pattern;
  bool operator==(const DnsRule&) const = default;
};
struct L7Rules {
  std::vector<HttpRule> http;
  std::vector<DnsRule> dns;
  bool empty() const { return http.empty() && dns.empty(); }
  bool operator==(const L7Rules&) const = default;
};

struct PortRule {
  std::vector<PortProtocol> ports;
  L7Rules rules;
  bool operator==(const PortRule&) const = default;
};

enum class Entity : uint8_t {
  kAll,    // everything: identity 0 in the map
  kWorld,  // outside the cluster: world, world-ipv4/6 and every CIDR identity
  kWorldIpv4,
  kWorldIpv6,
  kCluster,  // every identity that is not world (reserved ones and all endpoints)
  kHost,
  kRemoteNode,
  kKubeApiServer,
  kInit,
  kHealth,
  kUnmanaged,
  kIngress,
  kNone,  // nothing
};
std::string_view entityName(Entity e);
std::optional<Entity> parseEntity(std::string_view name);

struct CidrRule {
  IpPrefix cidr;
  std::vector<IpPrefix> except;  // each inside `cidr`
  // A Kubernetes NetworkPolicy ipBlock: also selects pods whose addresses it covers (Kubernetes'
  // semantics); a Cilium CIDR rule selects only CIDR identities. JSON: "selectsPods": true.
  bool selects_pods = false;
  bool operator==(const CidrRule&) const = default;
};

// One toFQDNs entry: exactly one of the two, normalised (policy/fqdn_pattern.h). It selects the
// identities the DNS proxy gave to addresses it learned for matching names (label
// `fqdn:<pattern>`, agent/fqdn).
struct FqdnSelector {
  std::string match_name, match_pattern;
  // The normalised pattern (a matchName is a pattern without `*`): the `fqdn:` label key.
  const std::string& pattern() const { return match_name.empty() ? match_pattern : match_name; }
  bool operator==(const FqdnSelector&) const = default;
};

// One element of ingress / egress / ingressDeny / egressDeny: the peers (any of them) and the
// ports. No peer field and some ports: every peer on those ports. No peer and no port: the rule
// only puts the endpoint into default deny for the direction.
struct PeerRule {
  std::vector<labels::LabelSelector> endpoints;  // fromEndpoints / toEndpoints
  std::vector<Entity> entities;                  // fromEntities / toEntities
  std::vector<IpPrefix> cidrs;                   // fromCIDR / toCIDR
  std::vector<CidrRule> cidr_sets;               // fromCIDRSet / toCIDRSet
  std::vector<FqdnSelector> fqdns;               // toFQDNs (egress allows only)
  std::vector<PortRule> ports;                   // toPorts

  bool hasPeers() const {
    return !endpoints.empty() || !entities.empty() || !cidrs.empty() || !cidr_sets.empty() ||
           !fqdns.empty();
  }
  bool operator==(const PeerRule&) const = default;
};

struct Rule {
  labels::LabelSelector endpoint_selector;  // the endpoints this rule applies to
  std::vector<PeerRule> ingress, ingress_deny, egress, egress_deny;
  // enableDefaultDeny; unset = true when the direction has any (allow or deny) rule.
  std::optional<bool> default_deny_ingress, default_deny_egress;
  labels::Labels labels;
  std::string description;

  // Whether endpoints this rule selects are default-deny in the direction.
  bool enforces(Direction d) const;
  const std::vector<PeerRule>& allows(Direction d) const {
    return d == Direction::kIngress ? ingress : egress;
  }
  const std::vector<PeerRule>& denies(Direction d) const {
    return d == Direction::kIngress ? ingress_deny : egress_deny;
  }
  bool hasL7() const;
  // Every prefix the rule references (CIDRs and their excepts), for CIDR identities.
  std::vector<IpPrefix> prefixes() const;

  // Cilium's api.Rule JSON (what GET /v1/policy lists); decodeRules() reads it back.
  nlohmann::json toJson() const;
  bool operator==(const Rule&) const = default;
};

}  // namespace cilium::policy
