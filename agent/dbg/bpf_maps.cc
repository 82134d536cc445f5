// Printers for the pinned datapath maps.
#include "agent/dbg/bpf_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/inet.h"
#include "agent/dbg/names.h"
#include "agent/dbg/table.h"

namespace cilium::dbg {
namespace {

using nlohmann::json;

std::string macText(const uint8_t* m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                     m[5]);
}

IpAddr addrOf(uint8_t family, const v4v6_addr& a) {
  return IpAddr::fromBytes(family == ENDPOINT_KEY_IPV6 ? IpFamily::kV6 : IpFamily::kV4, a.ip6);
}

void printJson(const json& j, std::ostream& out) { out << j.dump(2) << "\n"; }

}  // namespace

Status printEndpoints(const datapath::EndpointMap& map, bool json_out, std::ostream& out) {
  std::vector<std::pair<endpoint_key, endpoint_info>> entries;
  CILIUM_RETURN_IF_ERROR(map.forEach([&](const endpoint_key& k, const endpoint_info& v) {
    entries.emplace_back(k, v);
    return true;
  }));
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return addrOf(a.first.family, a.first.ip) < addrOf(b.first.family, b.first.ip);
  });
  if (json_out) {
    json arr = json::array();
    for (const auto& [k, v] : entries)
      arr.push_back({{"address", addrOf(k.family, k.ip).toString()},
                     {"id", v.lxc_id},
                     {"sec-id", v.sec_id},
                     {"flags", v.flags},
                     {"ifindex", v.ifindex},
                     {"mac", macText(v.mac)},
                     {"node-mac", macText(v.node_mac)},
                     {"host", (v.flags & ENDPOINT_F_HOST) != 0}});
    printJson(arr, out);
    return okStatus();
  }
  Table t({"IP ADDRESS", "LOCAL ENDPOINT INFO"});
  for (const auto& [k, v] : entries) {
    std::string info =
        (v.flags & ENDPOINT_F_HOST) != 0
            ? "(localhost)"
            : fmt::format("id={:<5} sec_id={:<5} flags=0x{:04x} ifindex={:<3} mac={} nodemac={}",
                          v.lxc_id, v.sec_id, v.flags, v.ifindex, macText(v.mac),
                          macText(v.node_mac));
    t.add({addrOf(k.family, k.ip).toString() + ":0", info});
  }
  t.print(out);
  return okStatus();
}

Status printIpcache(const datapath::IpcacheMap& map, bool json_out, std::ostream& out) {
  std::vector<std::pair<IpPrefix, remote_endpoint_info>> entries;
  CILIUM_RETURN_IF_ERROR(map.forEach([&](const ipcache_key& k, const remote_endpoint_info& v) {
    int len = static_cast<int>(k.prefixlen) - IPCACHE_PREFIX_BASE;
    entries.emplace_back(IpPrefix(addrOf(k.family, k.ip), len), v);
    return true;
  }));
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  auto tunnel = [](const IpPrefix& p, const remote_endpoint_info& v) {
    auto ep = datapath::ipcacheTunnelEndpoint(v);
    return ep ? ep->toString() : IpAddr::fromBytes(p.family(), v.tunnel_endpoint.ip6).toString();
  };
  auto flags = [](const remote_endpoint_info& v) {
    return (v.flags & IPCACHE_F_HAS_TUNNEL_EP) != 0 ? std::string("hastunnel")
                                                    : std::string("<none>");
  };
  if (json_out) {
    json arr = json::array();
    for (const auto& [p, v] : entries)
      arr.push_back({{"prefix", p.toString()},
                     {"identity", v.sec_identity},
                     {"encrypt-key", v.key},
                     {"tunnel-endpoint", tunnel(p, v)},
                     {"node-id", v.node_id},
                     {"flags", v.flags}});
    printJson(arr, out);
    return okStatus();
  }
  Table t({"IP PREFIX/ADDRESS", "IDENTITY"});
  for (const auto& [p, v] : entries)
    t.add({p.toString(), fmt::format("identity={} encryptkey={} tunnelendpoint={} flags={}",
                                     v.sec_identity, v.key, tunnel(p, v), flags(v))});
  t.print(out);
  return okStatus();
}

Status printTunnels(const datapath::IpcacheMap& map, bool json_out, std::ostream& out) {
  std::vector<std::tuple<IpPrefix, IpAddr, uint32_t>> entries;
  CILIUM_RETURN_IF_ERROR(map.forEach([&](const ipcache_key& k, const remote_endpoint_info& v) {
    if ((v.flags & IPCACHE_F_HAS_TUNNEL_EP) == 0) return true;
    int len = static_cast<int>(k.prefixlen) - IPCACHE_PREFIX_BASE;
    IpPrefix p(addrOf(k.family, k.ip), len);
    entries.emplace_back(p, *datapath::ipcacheTunnelEndpoint(v), v.sec_identity);
    return true;
  }));
  std::sort(entries.begin(), entries.end());
  if (json_out) {
    json arr = json::array();
    for (const auto& [p, ep, id] : entries)
      arr.push_back(
          {{"prefix", p.toString()}, {"tunnel-endpoint", ep.toString()}, {"identity", id}});
    printJson(arr, out);
    return okStatus();
  }
  Table t({"TUNNEL", "VALUE"});
  for (const auto& [p, ep, id] : entries) t.add({p.toString(), ep.toString()});
  t.print(out);
  return okStatus();
}

Status printLb(const bpf::Map<lb4_key, lb4_service>& services,
               const bpf::Map<lb4_slot_key, uint32_t>& slots,
               const bpf::Map<uint32_t, lb4_backend>& backends, bool json_out, std::ostream& out,
               Lb6Maps v6) {
  // Both families' frontends in one list; IPv4 first, each sorted by address.
  struct Fe {
    IpAddr ip;
    uint16_t port;  // host order
    uint8_t proto, scope;
    lb4_service v;
  };
  std::vector<Fe> fes;
  CILIUM_RETURN_IF_ERROR(services.forEach([&](const lb4_key& k, const lb4_service& v) {
    fes.push_back({IpAddr::fromNetworkOrder(k.address), ntohs(k.dport), k.proto, k.scope, v});
    return true;
  }));
  if (v6.services != nullptr)
    CILIUM_RETURN_IF_ERROR(v6.services->forEach([&](const lb6_key& k, const lb4_service& v) {
      fes.push_back(
          {IpAddr::fromBytes(IpFamily::kV6, k.address.ip6), ntohs(k.dport), k.proto, k.scope, v});
      return true;
    }));
  auto order = [](const Fe& f) { return std::tie(f.ip, f.port, f.proto, f.scope); };
  std::sort(fes.begin(), fes.end(), [&](const Fe& a, const Fe& b) { return order(a) < order(b); });
  auto proto = [](uint8_t p) { return p == 17 ? std::string("UDP") : std::string("TCP"); };
  auto addr = [&](const IpAddr& ip, uint16_t port, uint8_t p) {
    if (ip.isV4()) return fmt::format("{}:{}/{}", ip.toString(), port, proto(p));
    return fmt::format("[{}]:{}/{}", ip.toString(), port, proto(p));
  };
  // A backend of the frontend's family: "<addr>[ terminating]", or what is missing.
  auto backendOf = [&](bool is_v4, uint32_t id) -> Result<std::string> {
    if (is_v4) {
      CILIUM_ASSIGN_OR_RETURN(auto b, backends.lookup(id));
      if (!b) return fmt::format("<missing backend {}>", id);
      return addr(IpAddr::fromNetworkOrder(b->address), ntohs(b->port), b->proto) +
             (b->state == LB_BACKEND_TERMINATING ? " terminating" : "");
    }
    if (v6.backends == nullptr) return fmt::format("<missing backend {}>", id);
    CILIUM_ASSIGN_OR_RETURN(auto b, v6.backends->lookup(id));
    if (!b) return fmt::format("<missing backend {}>", id);
    return addr(IpAddr::fromBytes(IpFamily::kV6, b->address.ip6), ntohs(b->port), b->proto) +
           (b->state == LB_BACKEND_TERMINATING ? " terminating" : "");
  };
  auto type = [](uint8_t f) {
    if (f & SVC_F_NODEPORT) return "NodePort";
    if (f & SVC_F_EXTERNAL_IP) return "ExternalIPs";
    if (f & SVC_F_LOADBALANCER) return "LoadBalancer";
    return "ClusterIP";
  };
  json arr = json::array();
  Table t({"SERVICE ADDRESS", "BACKEND ADDRESS (SERVICE ID) (SLOT)"});
  for (const auto& f : fes) {
    const lb4_service& v = f.v;
    std::string fe = addr(f.ip, f.port, f.proto);
    std::string attrs = type(v.flags);
    if (v.flags & SVC_F_EXT_LOCAL) attrs += ", Local";
    if (v.flags & SVC_F_AFFINITY) attrs += fmt::format(", affinity {}s", v.affinity_timeout);
    if (f.scope == LB_SCOPE_INTERNAL) attrs += ", internal scope";
    if (v.flags2 & SVC_F2_MAGLEV) attrs += fmt::format(", maglev {}", v.maglev_size);
    json bes = json::array();
    t.add({fe, fmt::format("{} backends ({}) [{}]", v.count, v.rev_nat_index, attrs)});
    for (uint16_t s = 1; s <= v.count; s++) {
      CILIUM_ASSIGN_OR_RETURN(auto id, slots.lookup(lb4_slot_key{v.rev_nat_index, v.gen, s}));
      std::string be = "<missing slot>";
      if (id) {
        CILIUM_ASSIGN_OR_RETURN(be, backendOf(f.ip.isV4(), *id));
      }
      t.add({"", fmt::format("{} ({}) ({})", be, v.rev_nat_index, s)});
      bes.push_back({{"slot", s}, {"backend-id", id.value_or(0)}, {"address", be}});
    }
    arr.push_back({{"frontend", fe},
                   {"service-id", v.rev_nat_index},
                   {"type", type(v.flags)},
                   {"flags", v.flags},
                   {"affinity-timeout", v.affinity_timeout},
                   {"backends", bes}});
  }
  if (json_out) {
    printJson(arr, out);
    return okStatus();
  }
  t.print(out);
  return okStatus();
}

namespace {

// One family-free row of either NAT map.
struct NatRow {
  uint8_t proto = 0, dir = 0;
  IpAddr saddr, daddr, to_addr;
  uint16_t sport = 0, dport = 0, to_port = 0;  // host order
  uint16_t flags = 0;
  uint32_t rev_nat_index = 0, created = 0;
};

template <class Key, class Entry>
NatRow natRow(const Key& k, const Entry& v, IpAddr s, IpAddr d, IpAddr to) {
  return NatRow{k.proto,         k.dir,           s,       d,       to, ntohs(k.sport),
                ntohs(k.dport), ntohs(v.to_port), v.flags, v.rev_nat_index, v.created};
}

// "10.0.0.1:80", "[fd00::1]:80" (as `bpf ct list` prints IPv6).
std::string hostPort(const IpAddr& a, uint16_t port) {
  return a.isV4() ? fmt::format("{}:{}", a.toString(), port)
                  : fmt::format("[{}]:{}", a.toString(), port);
}

template <class Key, class Entry>
Result<size_t> flushAll(bpf::Map<Key, Entry>& nat) {
  std::vector<Key> keys;
  CILIUM_RETURN_IF_ERROR(nat.forEach([&](const Key& k, const Entry&) {
    keys.push_back(k);
    return true;
  }));
  size_t n = 0;
  for (const auto& k : keys) {
    CILIUM_ASSIGN_OR_RETURN(bool removed, nat.remove(k));
    if (removed) n++;
  }
  return n;
}

}  // namespace

Status printNat(const bpf::Map<nat4_key, nat4_entry>& nat, uint64_t now, bool json_out,
                std::ostream& out, const bpf::Map<nat6_key, nat6_entry>* nat6) {
  std::vector<NatRow> entries;
  CILIUM_RETURN_IF_ERROR(nat.forEach([&](const nat4_key& k, const nat4_entry& v) {
    entries.push_back(natRow(k, v, IpAddr::fromNetworkOrder(k.saddr),
                             IpAddr::fromNetworkOrder(k.daddr), IpAddr::fromNetworkOrder(v.to_addr)));
    return true;
  }));
  if (nat6 != nullptr)
    CILIUM_RETURN_IF_ERROR(nat6->forEach([&](const nat6_key& k, const nat6_entry& v) {
      entries.push_back(natRow(k, v, IpAddr::fromBytes(IpFamily::kV6, k.saddr.ip6),
                               IpAddr::fromBytes(IpFamily::kV6, k.daddr.ip6),
                               IpAddr::fromBytes(IpFamily::kV6, v.to_addr.ip6)));
      return true;
    }));
  // IPv4 rows first (IpAddr orders by family), each in tuple order.
  auto order = [](const NatRow& r) {
    return std::make_tuple(r.saddr.family(), r.proto, r.dir, r.saddr, r.sport, r.daddr, r.dport);
  };
  std::sort(entries.begin(), entries.end(),
            [&](const auto& a, const auto& b) { return order(a) < order(b); });
  auto kind = [](const NatRow& v) {
    return (v.flags & NAT_F_MASQ) != 0 ? std::string("Masquerade")
                                       : fmt::format("NodePort RevNAT={}", v.rev_nat_index);
  };
  auto age = [now](const NatRow& v) {
    return now >= v.created ? static_cast<int64_t>(now - v.created) : 0;
  };
  if (json_out) {
    json arr = json::array();
    for (const auto& v : entries) {
      bool egress = v.dir == NAT_DIR_EGRESS;
      json j = {{"protocol", protocolName(v.proto)},
                {"direction", egress ? "OUT" : "IN"},
                {"src", hostPort(v.saddr, v.sport)},
                {"dst", hostPort(v.daddr, v.dport)},
                {egress ? "xlate-src" : "xlate-dst", hostPort(v.to_addr, v.to_port)},
                {"created", v.created},
                {"age-seconds", age(v)},
                {"masquerade", (v.flags & NAT_F_MASQ) != 0}};
      if ((v.flags & NAT_F_MASQ) == 0) j["rev-nat"] = v.rev_nat_index;
      arr.push_back(std::move(j));
    }
    printJson(arr, out);
    return okStatus();
  }
  for (const auto& v : entries) {
    bool egress = v.dir == NAT_DIR_EGRESS;
    out << fmt::format("{} {} {} -> {} {} {} Created={}sec ago {}\n", protocolName(v.proto),
                       egress ? "OUT" : "IN", hostPort(v.saddr, v.sport),
                       hostPort(v.daddr, v.dport), egress ? "XLATE_SRC" : "XLATE_DST",
                       hostPort(v.to_addr, v.to_port), age(v), kind(v));
  }
  return okStatus();
}

Result<size_t> flushNat(bpf::Map<nat4_key, nat4_entry>& nat) { return flushAll(nat); }

Result<size_t> flushNat6(bpf::Map<nat6_key, nat6_entry>& nat) { return flushAll(nat); }

Status printIpMasq(const bpf::Map<ipmasq_key4, uint8_t>& map, bool json_out, std::ostream& out,
                   const bpf::Map<ipmasq_key6, uint8_t>* map6) {
  std::vector<IpPrefix> prefixes;
  CILIUM_RETURN_IF_ERROR(map.forEach([&](const ipmasq_key4& k, const uint8_t&) {
    prefixes.emplace_back(IpAddr::fromHostOrder(ntohl(k.addr)), static_cast<int>(k.prefixlen));
    return true;
  }));
  if (map6 != nullptr)
    CILIUM_RETURN_IF_ERROR(map6->forEach([&](const ipmasq_key6& k, const uint8_t&) {
      prefixes.emplace_back(IpAddr::fromBytes(IpFamily::kV6, k.addr.ip6),
                            static_cast<int>(k.prefixlen));
      return true;
    }));
  std::sort(prefixes.begin(), prefixes.end());
  if (json_out) {
    json arr = json::array();
    for (const auto& p : prefixes) arr.push_back(p.toString());
    printJson(arr, out);
    return okStatus();
  }
  out << "IP PREFIX\n";
  for (const auto& p : prefixes) out << p.toString() << "\n";
  return okStatus();
}

Status printConntrack(const datapath::CtMap& tcp, const datapath::CtMap& any, uint64_t now,
                      bool json_out, std::ostream& out, Ct6Maps v6) {
  // One family-free view of both key types: IPv4 rows first, each family in tuple order.
  struct Key {
    bool v6 = false;
    uint8_t nexthdr = 0;
    IpAddr saddr, daddr;
    uint16_t sport = 0, dport = 0;  // host order
    uint8_t flags = 0;
  };
  std::vector<std::pair<Key, ct_entry>> entries;
  for (const auto* m : {&tcp, &any})
    CILIUM_RETURN_IF_ERROR(m->forEach([&](const ct_key4& k, const ct_entry& v) {
      entries.push_back(
          {Key{false, k.nexthdr, IpAddr::fromNetworkOrder(k.saddr),
               IpAddr::fromNetworkOrder(k.daddr), ntohs(k.sport), ntohs(k.dport), k.flags},
           v});
      return true;
    }));
  for (const auto* m : {v6.tcp, v6.any}) {
    if (m == nullptr) continue;
    CILIUM_RETURN_IF_ERROR(m->forEach([&](const ct_key6& k, const ct_entry& v) {
      entries.push_back({Key{true, k.nexthdr, IpAddr::fromBytes(IpFamily::kV6, k.saddr.ip6),
                             IpAddr::fromBytes(IpFamily::kV6, k.daddr.ip6), ntohs(k.sport),
                             ntohs(k.dport), k.flags},
                         v});
      return true;
    }));
  }
  auto order = [](const Key& k) {
    return std::make_tuple(k.v6, k.nexthdr, k.saddr, k.daddr, k.sport, k.dport, k.flags);
  };
  std::sort(entries.begin(), entries.end(),
            [&](const auto& a, const auto& b) { return order(a.first) < order(b.first); });
  auto endpoint = [](const IpAddr& a, uint16_t port) {
    return a.isV4() ? fmt::format("{}:{}", a.toString(), port)
                    : fmt::format("[{}]:{}", a.toString(), port);
  };
  auto dir = [](uint8_t f) {
    switch (f) {
      case CT_KEY_EGRESS: return "OUT";
      case CT_KEY_INGRESS: return "IN";
      case CT_KEY_SERVICE: return "SVC";
      case CT_KEY_NODEPORT: return "NODEPORT";
      default: return "?";
    }
  };
  auto flagNames = [](uint16_t f) {
    static const std::pair<uint16_t, const char*> kNames[] = {
        {CT_F_RX_CLOSING, "RxClosing"},         {CT_F_TX_CLOSING, "TxClosing"},
        {CT_F_SEEN_NON_SYN, "SeenNonSyn"},      {CT_F_NODE_PORT, "NodePort"},
        {CT_F_PROXY_REDIRECT, "ProxyRedirect"}, {CT_F_DSR, "DSR"},
    };
    std::string s;
    for (const auto& [bit, name] : kNames)
      if ((f & bit) != 0) s += std::string(name) + " ";
    return s;
  };
  if (json_out) {
    json arr = json::array();
    for (const auto& [k, v] : entries)
      arr.push_back({{"protocol", protocolName(k.nexthdr)},
                     {"direction", dir(k.flags)},
                     {"src", endpoint(k.saddr, k.sport)},
                     {"dst", endpoint(k.daddr, k.dport)},
                     {"expires", v.lifetime},
                     {"remaining", static_cast<int64_t>(v.lifetime) - static_cast<int64_t>(now)},
                     {"tx-packets", v.tx_packets},
                     {"tx-bytes", v.tx_bytes},
                     {"rx-packets", v.rx_packets},
                     {"rx-bytes", v.rx_bytes},
                     {"flags", v.flags},
                     {"tx-flags-seen", v.tx_flags_seen},
                     {"rx-flags-seen", v.rx_flags_seen},
                     {"rev-nat", v.rev_nat_index},
                     {"source-security-id", v.src_sec_id},
                     {"policy-revision", v.policy_rev}});
    printJson(arr, out);
    return okStatus();
  }
  for (const auto& [k, v] : entries) {
    int64_t remaining = static_cast<int64_t>(v.lifetime) - static_cast<int64_t>(now);
    out << fmt::format(
        "{} {} {} -> {} expires={} ({}) RxPackets={} RxBytes={} RxFlagsSeen=0x{:02x} "
        "LastRxReport={} TxPackets={} TxBytes={} TxFlagsSeen=0x{:02x} LastTxReport={} "
        "Flags=0x{:04x} [ {}] RevNAT={} SourceSecurityID={} PolicyRevision={}\n",
        protocolName(k.nexthdr), dir(k.flags), endpoint(k.saddr, k.sport),
        endpoint(k.daddr, k.dport), v.lifetime,
        remaining > 0 ? fmt::format("remaining: {} sec(s)", remaining) : std::string("expired"),
        v.rx_packets, v.rx_bytes, v.rx_flags_seen, v.last_rx_report, v.tx_packets, v.tx_bytes,
        v.tx_flags_seen, v.last_tx_report, v.flags, flagNames(v.flags), v.rev_nat_index,
        v.src_sec_id, v.policy_rev);
  }
  return okStatus();
}

Status printMetrics(const datapath::MetricsMap& map, bool json_out, std::ostream& out) {
  struct Row {
    metrics_key key;
    uint64_t packets = 0;
    uint64_t bytes = 0;
  };
  std::vector<Row> rows;
  CILIUM_RETURN_IF_ERROR(
      map.forEach([&](const metrics_key& k, const bpf::PerCpu<metrics_value>& v) {
        Row r{k, 0, 0};
        for (const auto& c : v.values) {
          r.packets += c.count;
          r.bytes += c.bytes;
        }
        rows.push_back(r);
        return true;
      }));
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::make_tuple(a.key.reason, a.key.dir, a.key.file, a.key.line) <
           std::make_tuple(b.key.reason, b.key.dir, b.key.file, b.key.line);
  });
  if (json_out) {
    json arr = json::array();
    for (const auto& r : rows)
      arr.push_back({{"reason", dropReasonName(r.key.reason)},
                     {"reason-code", r.key.reason},
                     {"direction", metricDirectionName(r.key.dir)},
                     {"packets", r.packets},
                     {"bytes", r.bytes},
                     {"line", r.key.line},
                     {"file", sourceFileName(r.key.file)}});
    printJson(arr, out);
    return okStatus();
  }
  Table t({"REASON", "DIRECTION", "PACKETS", "BYTES", "LINE", "FILE"});
  for (const auto& r : rows)
    t.add({dropReasonName(r.key.reason), metricDirectionName(r.key.dir), std::to_string(r.packets),
           std::to_string(r.bytes), std::to_string(r.key.line), sourceFileName(r.key.file)});
  t.print(out);
  return okStatus();
}

namespace {

std::string portText(const policy_key& k) {
  if (k.prefixlen <= POLICY_PREFIX_ANY_PROTO || k.protocol == 0) return "ANY";
  std::string proto = protocolName(k.protocol);
  if (k.prefixlen <= POLICY_PREFIX_ANY_PORT) return "ANY/" + proto;
  uint16_t port = ntohs(k.dport);
  unsigned bits = k.prefixlen - POLICY_PREFIX_ANY_PORT;  // significant port bits
  if (bits >= 16) return fmt::format("{}/{}", port, proto);
  uint32_t last = port + ((1u << (16 - bits)) - 1);
  return fmt::format("{}-{}/{}", port, last, proto);
}

}  // namespace

Status printPolicy(const PolicyOuterMap& outer, const InnerMapOpener& open_inner,
                   uint32_t endpoint_id, const std::string& outer_path,
                   const IdentityLabeler& labeler, bool json_out, std::ostream& out) {
  CILIUM_ASSIGN_OR_RETURN(auto inner_id, outer.lookup(endpoint_id));
  if (!inner_id)
    return makeError(ErrorCode::kNotFound,
                     "endpoint {} has no policy map in {} (its packets are dropped as not ready)",
                     endpoint_id, outer_path);
  CILIUM_ASSIGN_OR_RETURN(auto inner, open_inner(*inner_id));
  std::vector<std::pair<policy_key, policy_entry>> entries;
  CILIUM_RETURN_IF_ERROR(inner->forEach([&](const policy_key& k, const policy_entry& v) {
    entries.emplace_back(k, v);
    return true;
  }));
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    auto key = [](const policy_key& k) {
      return std::make_tuple(k.egress, k.sec_label, k.protocol, ntohs(k.dport), k.prefixlen);
    };
    return key(a.first) < key(b.first);
  });
  auto labels = [&](uint32_t id) {
    if (id == 0) return std::string("ANY");
    std::string l = labeler ? labeler(id) : std::string();
    return l.empty() ? fmt::format("identity={}", id) : l;
  };
  if (json_out) {
    json arr = json::array();
    for (const auto& [k, v] : entries)
      arr.push_back({{"policy", (v.flags & POLICY_F_DENY) != 0 ? "Deny" : "Allow"},
                     {"direction", k.egress == POLICY_EGRESS ? "Egress" : "Ingress"},
                     {"identity", k.sec_label},
                     {"labels", labels(k.sec_label)},
                     {"port", portText(k)},
                     {"proxy-port", ntohs(v.proxy_port)},
                     {"auth-type", v.auth_type},
                     {"prefix", k.prefixlen}});
    printJson(json{{"endpoint-id", endpoint_id}, {"path", outer_path}, {"entries", arr}}, out);
    return okStatus();
  }
  out << "Endpoint ID: " << endpoint_id << "\n";
  out << "Path: " << outer_path << " [" << endpoint_id << "] (inner map id " << *inner_id
      << ")\n\n";
  Table t({"POLICY", "DIRECTION", "LABELS (source:key[=value])", "PORT/PROTO", "PROXY PORT",
           "AUTH TYPE", "PREFIX"});
  for (const auto& [k, v] : entries) {
    uint16_t proxy = ntohs(v.proxy_port);
    t.add({(v.flags & POLICY_F_DENY) != 0 ? "Deny" : "Allow",
           k.egress == POLICY_EGRESS ? "Egress" : "Ingress", labels(k.sec_label), portText(k),
           proxy == 0 ? "NONE" : std::to_string(proxy),
           v.auth_type == 0 ? "disabled" : std::to_string(v.auth_type),
           std::to_string(k.prefixlen)});
  }
  t.print(out);
  return okStatus();
}

Result<std::unique_ptr<PolicyInnerMap>> openMapById(uint32_t map_id) {
  int fd = ::bpf_map_get_fd_by_id(map_id);
  if (fd < 0) return errnoError(errno, fmt::format("open policy map id {}", map_id));
  CILIUM_ASSIGN_OR_RETURN(auto m, (bpf::KernelMap<policy_key, policy_entry>::fromFd(UniqueFd(fd))));
  return std::unique_ptr<PolicyInnerMap>(std::move(m));
}

}  // namespace cilium::dbg
