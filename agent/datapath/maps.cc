// Key construction and the runtime revision shared by every map writer.
#include "agent/datapath/maps.h"

#include <arpa/inet.h>

#include <cstring>

namespace cilium::datapath {

Status bumpPolicyRevision(RuntimeConfigMap& runtime) {
  CILIUM_ASSIGN_OR_RETURN(auto cur, runtime.lookup(RUNTIME_POLICY_REV));
  return runtime.update(RUNTIME_POLICY_REV, cur.value_or(0) + 1);
}

Result<uint32_t> parseIpv4(const std::string& dotted) {
  in_addr a{};
  if (inet_pton(AF_INET, dotted.c_str(), &a) != 1)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not an IPv4 address", dotted);
  return a.s_addr;
}

std::string formatIpv4(uint32_t network_order) {
  in_addr a{network_order};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

endpoint_key endpointKeyV4(uint32_t ip_be) {
  endpoint_key k{};
  k.ip.ip4 = ip_be;
  k.family = ENDPOINT_KEY_IPV4;
  return k;
}

endpoint_key endpointKey(const IpAddr& ip) {
  if (ip.isV4()) return endpointKeyV4(ip.v4NetworkOrder());
  endpoint_key k{};
  std::memcpy(k.ip.ip6, ip.bytes().data(), sizeof(k.ip.ip6));
  k.family = ENDPOINT_KEY_IPV6;
  return k;
}

ipcache_key ipcacheKey(const IpPrefix& prefix) {
  if (prefix.family() == IpFamily::kV4)
    return ipcacheKeyV4(prefix.addr().v4NetworkOrder(), prefix.len());
  ipcache_key k{};
  k.prefixlen = IPCACHE_PREFIX_BASE + prefix.len();
  k.family = ENDPOINT_KEY_IPV6;
  std::memcpy(k.ip.ip6, prefix.addr().bytes().data(), 16);
  return k;
}

std::optional<IpAddr> ipcacheTunnelEndpoint(const remote_endpoint_info& v) {
  if ((v.flags & IPCACHE_F_HAS_TUNNEL_EP) == 0) return std::nullopt;
  if (v.flags & IPCACHE_F_TUNNEL_EP_IPV6)
    return IpAddr::fromBytes(IpFamily::kV6,
                             reinterpret_cast<const uint8_t*>(v.tunnel_endpoint.ip6));
  return IpAddr::fromNetworkOrder(v.tunnel_endpoint.ip4);
}

ipcache_key ipcacheKeyV4(uint32_t ip_be, uint8_t prefix_len) {
  if (prefix_len > 32) prefix_len = 32;
  ipcache_key k{};
  k.prefixlen = IPCACHE_PREFIX_BASE + prefix_len;
  k.family = ENDPOINT_KEY_IPV4;
  uint32_t mask = prefix_len == 0 ? 0 : htonl(~uint32_t{0} << (32 - prefix_len));
  k.ip.ip4 = ip_be & mask;
  return k;
}

policy_key policyKey(uint32_t identity, uint8_t direction, uint8_t proto, uint16_t port,
                     uint8_t port_prefix_bits) {
  policy_key k{};
  k.sec_label = identity;
  k.egress = direction;
  if (proto == 0) {
    k.prefixlen = POLICY_PREFIX_ANY_PROTO;
    return k;
  }
  k.protocol = proto;
  if (port_prefix_bits > 16) port_prefix_bits = 16;
  uint16_t mask =
      port_prefix_bits == 0 ? 0 : static_cast<uint16_t>(0xffff << (16 - port_prefix_bits));
  k.dport = htons(static_cast<uint16_t>(port & mask));
  k.prefixlen = POLICY_PREFIX_ANY_PORT + port_prefix_bits;
  return k;
}

Status validatePolicyEntry(const PolicyEntry& entry) {
  const policy_key& k = entry.key;
  if (k.prefixlen < POLICY_PREFIX_ANY_PROTO || k.prefixlen > POLICY_PREFIX_FULL)
    return makeError(ErrorCode::kInvalidArgument,
                     "policy key prefix length {} outside [{}, {}] (identity {})", k.prefixlen,
                     POLICY_PREFIX_ANY_PROTO, POLICY_PREFIX_FULL, k.sec_label);
  if (k.egress != POLICY_INGRESS && k.egress != POLICY_EGRESS)
    return makeError(ErrorCode::kInvalidArgument, "policy key direction {} is not 0 or 1",
                     k.egress);
  if (k.prefixlen == POLICY_PREFIX_ANY_PROTO) {
    if (k.protocol != 0 || k.dport != 0)
      return makeError(ErrorCode::kInvalidArgument,
                       "any-protocol policy key carries protocol {} port {}", k.protocol,
                       ntohs(k.dport));
  } else {
    if (k.protocol == 0)
      return makeError(ErrorCode::kInvalidArgument,
                       "policy key prefix length {} covers the protocol but protocol is 0",
                       k.prefixlen);
    uint32_t port_bits = k.prefixlen - POLICY_PREFIX_ANY_PORT;
    uint16_t host_mask = port_bits >= 16 ? 0 : static_cast<uint16_t>(0xffffu >> port_bits);
    if ((ntohs(k.dport) & host_mask) != 0)
      return makeError(ErrorCode::kInvalidArgument,
                       "policy key port {} has bits beyond its {}-bit prefix", ntohs(k.dport),
                       port_bits);
  }
  if ((entry.value.flags & ~(POLICY_F_DENY | POLICY_F_UNENFORCED)) != 0)
    return makeError(ErrorCode::kInvalidArgument, "policy entry has unknown flags {:#x}",
                     entry.value.flags);
  if ((entry.value.flags & POLICY_F_DENY) && (entry.value.flags & POLICY_F_UNENFORCED))
    return makeError(ErrorCode::kInvalidArgument, "a deny policy entry cannot be unenforced");
  if ((entry.value.flags & POLICY_F_DENY) && entry.value.proxy_port != 0)
    return makeError(ErrorCode::kInvalidArgument, "a deny policy entry cannot redirect to a proxy");
  return okStatus();
}

PolicyEntry normalizePolicyEntry(PolicyEntry entry) {
  entry.value.prefix_len = static_cast<uint8_t>(entry.key.prefixlen);
  return entry;
}

std::vector<std::pair<uint16_t, uint8_t>> portRangeBlocks(uint16_t first, uint16_t last) {
  std::vector<std::pair<uint16_t, uint8_t>> out;
  if (first > last) return out;
  uint32_t cur = first;
  while (cur <= last) {
    // Largest aligned block starting at cur that stays within last.
    uint8_t bits = 0;  // host bits of the block
    while (bits < 16) {
      uint32_t size = uint32_t{1} << (bits + 1);
      if ((cur & (size - 1)) != 0 || cur + size - 1 > last) break;
      bits++;
    }
    out.emplace_back(static_cast<uint16_t>(cur), static_cast<uint8_t>(16 - bits));
    cur += uint32_t{1} << bits;
  }
  return out;
}

}  // namespace cilium::datapath
