// The L7 policy the agent hands the proxies (docs/l7.md): per endpoint, the rules of its ports that
// the datapath redirects, with the peers each applies to; its JSON form on the agent's socket and
// in the proxy's state file; and the compiled form the HTTP proxy decides requests with (RE2).
//
// Semantics: a request on a connection of endpoint E in direction D to port P from (ingress) or
// to (egress) peer identity X is allowed when some rule of E/D covering P and X is allow_all, or
// has an HTTP rule matching the request. No rule: denied (fail closed), as is an unknown endpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/common/inet.h"

namespace re2 {
class RE2;
}

namespace cilium::proxy {

enum class Direction : uint8_t { kIngress = 0, kEgress = 1 };

struct HeaderMatch {
  enum class Mismatch : uint8_t { kNone, kLog, kAdd, kDelete, kReplace };
  std::string name, value;
  Mismatch mismatch = Mismatch::kNone;
  bool operator==(const HeaderMatch&) const = default;
};

struct HttpRule {
  std::string method, path, host;    // RE2, whole-value match; empty = any
  std::vector<std::string> headers;  // "Name" (present) or "Name: value" (exact)
  std::vector<HeaderMatch> header_matches;
  bool operator==(const HttpRule&) const = default;
};

struct DnsRule {
  std::string match_name, match_pattern;
  bool operator==(const DnsRule&) const = default;
};

struct PortRule {
  Direction dir = Direction::kIngress;
  uint8_t proto = 0;                 // 0 = any
  uint16_t port = 0;                 // with bits: an aligned block of ports
  uint8_t bits = 0;                  // 16 = one port, 0 = every port
  std::vector<uint32_t> identities;  // the peers; 0 = any peer
  bool allow_all = false;
  std::vector<HttpRule> http;
  std::vector<DnsRule> dns;
  bool operator==(const PortRule&) const = default;
};

struct EndpointPolicy {
  uint16_t id = 0;
  uint32_t identity = 0;
  std::string ipv4;  // dotted quad; "" = none
  std::string ipv6;  // a dual-stack endpoint's IPv6 address (text); "" = none
  std::vector<PortRule> rules;
  bool operator==(const EndpointPolicy&) const = default;
};

// Everything the proxies enforce, at one version (the agent counts up; the proxy acknowledges).
struct PolicySnapshot {
  uint64_t version = 0;
  // The ports the agent allocated (agent/proxy/ports.h); the HTTP proxy listens on the first two.
  uint16_t http_ingress_port = 0, http_egress_port = 0, dns_egress_port = 0;
  std::vector<EndpointPolicy> endpoints;
  bool operator==(const PolicySnapshot&) const = default;
};

nlohmann::json toJson(const PolicySnapshot& s);
// kInvalidArgument naming the field for anything malformed (a proxy refuses such a snapshot whole
// and keeps the one it has).
Result<PolicySnapshot> snapshotFromJson(const nlohmann::json& j);

// A request as the matcher sees it. Header names are compared case-insensitively.
struct RequestView {
  std::string_view method, path, host;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

// What to do with an allowed request's headers (headerMatches mismatch actions).
struct HeaderAction {
  enum class Kind : uint8_t { kAdd, kDelete, kReplace, kLog };
  Kind kind = Kind::kLog;
  std::string name, value;
};

struct Decision {
  bool allowed = false;
  std::vector<HeaderAction> actions;  // of the rule that allowed it
};

// The compiled snapshot; immutable and shared by every connection (swap the pointer to update).
class CompiledPolicy {
 public:
  // Fails (kInvalidArgument) when a regex does not compile: the agent validates every rule at
  // import, so this is a broken snapshot, refused whole.
  static Result<std::shared_ptr<const CompiledPolicy>> compile(const PolicySnapshot& s);
  ~CompiledPolicy();

  uint64_t version() const { return version_; }

  // The endpoint with this address (its IPv4 or its IPv6 one), or nullopt.
  struct EndpointRef {
    uint16_t id = 0;
    uint32_t identity = 0;
    size_t index = 0;
  };
  std::optional<EndpointRef> endpointByAddress(const IpAddr& ip) const;

  // Whether any rule covers (endpoint, dir, proto, port, remote identity); the HTTP proxy still
  // decides each request with decide().
  bool covers(const EndpointRef& ep, Direction dir, uint8_t proto, uint16_t port,
              uint32_t remote) const;
  Decision decide(const EndpointRef& ep, Direction dir, uint8_t proto, uint16_t port,
                  uint32_t remote, const RequestView& req) const;

 private:
  struct CompiledHttp;
  struct CompiledRule;
  struct CompiledEndpoint;
  CompiledPolicy() = default;
  uint64_t version_ = 0;
  std::vector<CompiledEndpoint> endpoints_;
  std::vector<std::pair<IpAddr, size_t>> by_addr_;  // sorted
};

}  // namespace cilium::proxy
