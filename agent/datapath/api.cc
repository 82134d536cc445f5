// REST handlers over the pinned maps.
#include "agent/datapath/api.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace cilium::datapath {
namespace {

const std::vector<std::string>& mapNames() {
  static const std::vector<std::string> names = {
      "cilium_lxc",        "cilium_lxc_if",         "cilium_ipcache",    "cilium_policy_v2",
      "cilium_ct4_global", "cilium_ct_any4_global", "cilium_ct6_global", "cilium_ct_any6_global",
      "cilium_metrics",    "cilium_runtime_config", "cilium_events",     "cilium_event_stats"};
  return names;
}

IpAddr v6Addr(const uint8_t* bytes) { return IpAddr::fromBytes(IpFamily::kV6, bytes); }

std::string endpointInfoText(const endpoint_info& v) {
  // Each family's address when the endpoint has one (IPv6-only endpoints have no IPv4).
  std::string text = fmt::format("id={} ifindex={} identity={} flags={:#x}", v.lxc_id, v.ifindex,
                                 v.sec_id, v.flags);
  if (v.ipv4 != 0) text += " ipv4=" + formatIpv4(v.ipv4);
  static constexpr uint8_t kNone[sizeof(endpoint_info::ipv6)] = {};
  if (std::memcmp(v.ipv6, kNone, sizeof(kNone)) != 0) text += " ipv6=" + v6Addr(v.ipv6).toString();
  return text;
}

std::string endpointKeyText(const endpoint_key& k) {
  return k.family == ENDPOINT_KEY_IPV6 ? v6Addr(k.ip.ip6).toString() : formatIpv4(k.ip.ip4);
}

// A conntrack key as "TCP OUT 10.0.0.1:40000 -> 10.0.0.2:80", IPv6 addresses in brackets.
std::string ctEndpoint(const IpAddr& a, uint16_t port_be) {
  return a.isV4() ? fmt::format("{}:{}", a.toString(), ntohs(port_be))
                  : fmt::format("[{}]:{}", a.toString(), ntohs(port_be));
}

std::string ctKeyText(uint8_t proto, uint8_t flags, const IpAddr& saddr, uint16_t sport,
                      const IpAddr& daddr, uint16_t dport) {
  const char* dir = flags == CT_KEY_EGRESS     ? "OUT"
                    : flags == CT_KEY_INGRESS  ? "IN"
                    : flags == CT_KEY_SERVICE  ? "SVC"
                    : flags == CT_KEY_NODEPORT ? "NODEPORT"
                                               : "?";
  std::string p = proto == IPPROTO_TCP      ? "TCP"
                  : proto == IPPROTO_UDP    ? "UDP"
                  : proto == IPPROTO_ICMP   ? "ICMP"
                  : proto == IPPROTO_ICMPV6 ? "ICMPv6"
                                            : std::to_string(proto);
  return fmt::format("{} {} {} -> {}", p, dir, ctEndpoint(saddr, sport), ctEndpoint(daddr, dport));
}

std::string ctEntryText(const ct_entry& v) {
  return fmt::format(
      "expires={} rx_packets={} rx_bytes={} tx_packets={} tx_bytes={} flags={:#x} src_sec_id={}",
      v.lifetime, v.rx_packets, v.rx_bytes, v.tx_packets, v.tx_bytes, v.flags, v.src_sec_id);
}

IpAddr ctAddr(uint32_t be) { return IpAddr::fromNetworkOrder(be); }
IpAddr ctAddr(const v4v6_addr& a) { return v6Addr(a.ip6); }

// One conntrack map of either family into REST entries, the same text for both.
template <class Key>
Status listConntrack(const bpf::Map<Key, ct_entry>* map, std::vector<api::BpfMapEntry>& out) {
  if (map == nullptr) return okStatus();
  return map->forEach([&](const Key& k, const ct_entry& v) {
    out.push_back(api::BpfMapEntry{
        ctKeyText(k.nexthdr, k.flags, ctAddr(k.saddr), k.sport, ctAddr(k.daddr), k.dport),
        ctEntryText(v), "ok", ""});
    return true;
  });
}

}  // namespace

Status registerMapRoutes(api::Router& router, Maps maps, std::string pin_dir,
                         std::map<std::string, MapLister> listers) {
  using api::Method;
  using api::Request;
  using api::Response;
  CILIUM_RETURN_IF_ERROR(
      router.add(Method::kGet, "/v1/map", [pin_dir](const Request&) -> Result<Response> {
        api::BpfMapList list;
        for (const auto& n : mapNames()) list.maps.push_back(api::BpfMap{pin_dir + "/" + n, {}});
        return Response::json(api::encode(list));
      }));
  return router.add(
      Method::kGet, "/v1/map/{name}",
      [maps, pin_dir, listers = std::move(listers)](const Request& r) -> Result<Response> {
        const std::string& name = r.param("name");
        const auto& names = mapNames();
        if (std::find(names.begin(), names.end(), name) == names.end())
          return makeError(ErrorCode::kNotFound, "map {} not found", name);
        api::BpfMap m{pin_dir + "/" + name, {}};
        if (auto l = listers.find(name); l != listers.end()) {
          CILIUM_ASSIGN_OR_RETURN(m.cache, l->second());
        } else if (name == "cilium_lxc") {
          CILIUM_RETURN_IF_ERROR(maps.endpoints->forEach([&](const endpoint_key& k,
                                                             const endpoint_info& v) {
            m.cache.push_back(api::BpfMapEntry{endpointKeyText(k), endpointInfoText(v), "ok", ""});
            return true;
          }));
        } else if (name == "cilium_lxc_if") {
          CILIUM_RETURN_IF_ERROR(
              maps.endpoints_by_ifindex->forEach([&](const uint32_t& k, const endpoint_info& v) {
                m.cache.push_back(
                    api::BpfMapEntry{std::to_string(k), endpointInfoText(v), "ok", ""});
                return true;
              }));
        } else if (name == "cilium_ct4_global") {
          CILIUM_RETURN_IF_ERROR(listConntrack(maps.ct_tcp, m.cache));
        } else if (name == "cilium_ct_any4_global") {
          CILIUM_RETURN_IF_ERROR(listConntrack(maps.ct_any, m.cache));
        } else if (name == "cilium_ct6_global") {
          CILIUM_RETURN_IF_ERROR(listConntrack(maps.ct6_tcp, m.cache));
        } else if (name == "cilium_ct_any6_global") {
          CILIUM_RETURN_IF_ERROR(listConntrack(maps.ct6_any, m.cache));
        } else if (name == "cilium_policy_v2") {
          CILIUM_ASSIGN_OR_RETURN(auto eps, maps.policy->endpoints());
          for (uint16_t id : eps) {
            auto entries = maps.policy->dump(id);
            m.cache.push_back(api::BpfMapEntry{
                std::to_string(id),
                entries.ok() ? fmt::format("entries={}", entries->size())
                             : entries.error().message(),
                "ok", ""});
          }
        }
        return Response::json(api::encode(m));
      });
}

}  // namespace cilium::datapath
