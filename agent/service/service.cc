// The service manager: frontend and backend id allocation, atomic backend replacement through
// slot generations, batched programming and restore from the pinned maps.
#include "agent/service/service.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <future>
#include <set>
#include <system_error>

#include "agent/common/log.h"
#include "agent/service/maglev.h"

namespace cilium::service {
namespace {

auto& log() {
  static auto l = cilium::logger("service");
  return l;
}

uint8_t flagsOf(const LbService& s) {
  uint8_t f = 0;
  switch (s.type) {
    case FrontendType::kClusterIp: break;
    case FrontendType::kNodePort: f |= SVC_F_NODEPORT; break;
    case FrontendType::kExternalIp: f |= SVC_F_EXTERNAL_IP; break;
    case FrontendType::kLoadBalancer: f |= SVC_F_LOADBALANCER; break;
  }
  if (s.session_affinity) f |= SVC_F_AFFINITY;
  if (s.type != FrontendType::kClusterIp && s.ext_traffic_policy == TrafficPolicy::kLocal)
    f |= SVC_F_EXT_LOCAL;
  return f;
}

FrontendType typeOf(uint8_t flags) {
  if (flags & SVC_F_NODEPORT) return FrontendType::kNodePort;
  if (flags & SVC_F_EXTERNAL_IP) return FrontendType::kExternalIp;
  if (flags & SVC_F_LOADBALANCER) return FrontendType::kLoadBalancer;
  return FrontendType::kClusterIp;
}

template <typename T>
Status asStatus(const Result<T>& r) {
  if (r.ok()) return okStatus();
  return r.error();
}

// Applies a batch of updates through the map's batch call when it has one.
template <typename K, typename V>
Status writeAll(bpf::Map<K, V>* map, const std::vector<K>& keys, const std::vector<V>& vals) {
  if (keys.empty()) return okStatus();
  return map->updateBatch(std::span<const K>(keys), std::span<const V>(vals));
}

}  // namespace

std::string_view protocolName(Protocol p) { return p == Protocol::kUdp ? "UDP" : "TCP"; }

Result<Protocol> parseProtocol(std::string_view s) {
  std::string u(s);
  for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (u == "TCP") return Protocol::kTcp;
  if (u == "UDP") return Protocol::kUdp;
  return makeError(ErrorCode::kInvalidArgument, "protocol \"{}\" is not TCP or UDP", s);
}

std::string_view frontendTypeName(FrontendType t) {
  switch (t) {
    case FrontendType::kClusterIp: return "ClusterIP";
    case FrontendType::kNodePort: return "NodePort";
    case FrontendType::kExternalIp: return "ExternalIPs";
    case FrontendType::kLoadBalancer: return "LoadBalancer";
  }
  return "ClusterIP";
}

lb4_key frontendKey(const Frontend& fe) {
  lb4_key k{};
  k.address = fe.ip.v4NetworkOrder();
  k.dport = htons(fe.port);
  k.proto = static_cast<uint8_t>(fe.proto);
  k.scope = LB_SCOPE_EXTERNAL;
  return k;
}

lb4_key internalFrontendKey(const Frontend& fe) {
  lb4_key k = frontendKey(fe);
  k.scope = LB_SCOPE_INTERNAL;
  return k;
}

lb6_key frontendKey6(const Frontend& fe, uint8_t scope) {
  lb6_key k{};
  std::memcpy(k.address.ip6, fe.ip.bytes().data(), 16);
  k.dport = htons(fe.port);
  k.proto = static_cast<uint8_t>(fe.proto);
  k.scope = scope;
  return k;
}

namespace {

// expandService into `out` (cleared first), so that a caller expanding many Services reuses one
// vector instead of allocating one per Service. IPv6 frontends are left out and counted in
// *skipped_v6 when enable_ipv6 is off.
Status expandServiceInto(const Service& svc, const ManagerConfig& cfg, std::vector<LbService>& out,
                         size_t* skipped_v6 = nullptr) {
  out.clear();
  if (svc.name.name.empty() || svc.name.ns.empty())
    return makeError(ErrorCode::kInvalidArgument, "service: metadata.name and namespace required");
  auto where = [&](std::string_view field) { return svc.name.str() + ": " + std::string(field); };
  if (!svc.more_cluster_ips.empty() && !svc.cluster_ip)
    return makeError(ErrorCode::kInvalidArgument, "{}: a second ClusterIP without a first",
                     where("clusterIPs"));
  for (const auto& ip : svc.more_cluster_ips)
    if (ip.family() == svc.cluster_ip->family())
      return makeError(ErrorCode::kInvalidArgument, "{}: {} and {} are of one family",
                       where("clusterIPs"), svc.cluster_ip->toString(), ip.toString());
  for (const auto& p : svc.ports) {
    if (p.port == 0) return makeError(ErrorCode::kInvalidArgument, "{} is 0", where("ports.port"));
    bool mixed = false;
    for (const auto& b : p.backends) {
      if (b.port == 0)
        return makeError(ErrorCode::kInvalidArgument, "{} is 0", where("endpoints.ports.port"));
      mixed |= b.ip.family() != p.backends.front().ip.family();
    }
    auto add = [&](const IpAddr& ip, uint16_t port, FrontendType type) -> Status {
      if (!ip.isV4() && !cfg.enable_ipv6) {
        if (skipped_v6 != nullptr) (*skipped_v6)++;
        return okStatus();
      }
      auto& s = out.emplace_back();
      s.frontend = Frontend{ip, port, p.proto};
      s.type = type;
      // Each family's frontend gets that family's backends only (a dual-stack Service's
      // EndpointSlices of both address types arrive in one list).
      if (!mixed && (p.backends.empty() || p.backends.front().ip.family() == ip.family())) {
        s.backends = p.backends;
      } else {
        s.backends.clear();
        for (const auto& b : p.backends)
          if (b.ip.family() == ip.family()) s.backends.push_back(b);
      }
      s.session_affinity = svc.session_affinity;
      s.affinity_timeout = svc.affinity_timeout;
      s.ext_traffic_policy = svc.ext_traffic_policy;
      s.algorithm = svc.lb_algorithm.value_or(cfg.algorithm);
      s.owner = svc.name;
      s.port_name = p.name;
      return okStatus();
    };
    if (svc.cluster_ip)
      CILIUM_RETURN_IF_ERROR(add(*svc.cluster_ip, p.port, FrontendType::kClusterIp));
    for (const auto& ip : svc.more_cluster_ips)
      CILIUM_RETURN_IF_ERROR(add(ip, p.port, FrontendType::kClusterIp));
    if (!cfg.kube_proxy_replacement) continue;
    for (const auto& ip : svc.external_ips)
      CILIUM_RETURN_IF_ERROR(add(ip, p.port, FrontendType::kExternalIp));
    for (const auto& ip : svc.load_balancer_ips)
      CILIUM_RETURN_IF_ERROR(add(ip, p.port, FrontendType::kLoadBalancer));
    if (p.node_port != 0)
      for (const auto& ip : cfg.node_ips)
        CILIUM_RETURN_IF_ERROR(add(ip, p.node_port, FrontendType::kNodePort));
  }
  // Two ports of one Service on the same frontend would fight over one map entry. Most Services
  // have a handful of frontends: comparing pairs allocates nothing, unlike a set per Service.
  auto twice = [&](const Frontend& f) {
    return makeError(ErrorCode::kInvalidArgument, "{} {}:{}/{} appears twice", where("ports"),
                     f.ip.toString(), f.port, protocolName(f.proto));
  };
  if (out.size() <= 32) {
    for (size_t i = 1; i < out.size(); i++)
      for (size_t j = 0; j < i; j++)
        if (out[i].frontend == out[j].frontend) return twice(out[i].frontend);
  } else {
    std::set<Frontend> seen;
    for (const auto& s : out)
      if (!seen.insert(s.frontend).second) return twice(s.frontend);
  }
  return okStatus();
}

}  // namespace

Result<std::vector<LbService>> expandService(const Service& svc, const ManagerConfig& cfg) {
  std::vector<LbService> out;
  CILIUM_RETURN_IF_ERROR(expandServiceInto(svc, cfg, out));
  return out;
}

Manager::Manager(ServiceMaps maps, ManagerConfig cfg)
    : maps_(maps),
      cfg_(std::move(cfg)),
      frontends_(&arena_),
      by_frontend_(&arena_),
      by_owner_(&arena_),
      backends_(&arena_),
      backend_by_id_(&arena_) {}

size_t Manager::FrontendHash::operator()(const Frontend& f) const {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : f.ip.bytes()) h = (h ^ b) * 1099511628211ull;
  h = (h ^ f.port) * 1099511628211ull;
  return static_cast<size_t>((h ^ static_cast<uint8_t>(f.proto)) * 1099511628211ull);
}

size_t Manager::NameHash::operator()(const ServiceName& n) const {
  return std::hash<std::string>()(n.ns) * 31 + std::hash<std::string>()(n.name);
}

size_t Manager::BackendKeyHash::operator()(const BackendKey& k) const {
  const auto& b = std::get<0>(k).bytes();
  uint64_t lo, hi;
  std::memcpy(&lo, b.data(), 8);
  std::memcpy(&hi, b.data() + 8, 8);
  uint64_t v = lo ^ (hi * 0x9e3779b97f4a7c15ull) ^
               ((uint64_t{std::get<1>(k)} << 8 | std::get<2>(k)) * 0xff51afd7ed558ccdull);
  return std::hash<uint64_t>()(v ^ (v >> 29));
}

void Manager::planBackendWrite(uint32_t id, const BackendKey& key, uint8_t state, Writes& w) const {
  const auto& [ip, port, proto] = key;
  if (ip.isV4()) {
    lb4_backend v{};
    v.address = ip.v4NetworkOrder();
    v.port = htons(port);
    v.proto = proto;
    v.state = state;
    w.backend_keys.push_back(id);
    w.backend_vals.push_back(v);
  } else {
    lb6_backend v{};
    std::memcpy(v.address.ip6, ip.bytes().data(), 16);
    v.port = htons(port);
    v.proto = proto;
    v.state = state;
    w.backend6_keys.push_back(id);
    w.backend6_vals.push_back(v);
  }
}

Status Manager::writeBackendState(uint32_t id, const BackendKey& key, uint8_t state) const {
  Writes w;
  planBackendWrite(id, key, state, w);
  if (!w.backend_keys.empty()) return maps_.backends->update(id, w.backend_vals[0]);
  return maps_.backends6->update(id, w.backend6_vals[0]);
}

void Manager::planFrontendWrite(const Frontend& fe, uint8_t scope, const lb4_service& v,
                                Writes& w) {
  if (fe.ip.isV4()) {
    w.fe_keys.push_back(scope == LB_SCOPE_INTERNAL ? internalFrontendKey(fe) : frontendKey(fe));
    w.fe_vals.push_back(v);
  } else {
    w.fe6_keys.push_back(frontendKey6(fe, scope));
    w.fe6_vals.push_back(v);
  }
}

Status Manager::validate(const LbService& svc) const {
  const bool v6 = !svc.frontend.ip.isV4();
  if (v6 && !cfg_.enable_ipv6)
    return makeError(ErrorCode::kFailedPrecondition,
                     "frontend {}: IPv6 is disabled on this agent (enable-ipv6)",
                     svc.frontend.ip.toString());
  if (v6 && (maps_.services6 == nullptr || maps_.backends6 == nullptr || maps_.revnat6 == nullptr))
    return makeError(ErrorCode::kFailedPrecondition,
                     "frontend {}: the IPv6 service maps are not loaded",
                     svc.frontend.ip.toString());
  if (svc.frontend.port == 0)
    return makeError(ErrorCode::kInvalidArgument, "frontend-address.port is 0");
  if (svc.algorithm == LbAlgorithm::kMaglev && maps_.maglev == nullptr)
    return makeError(ErrorCode::kFailedPrecondition,
                     "frontend {}: Maglev needs the cilium_lb4_maglev map",
                     svc.frontend.ip.toString());
  if (svc.backends.size() > LB_MAX_BACKENDS)
    return makeError(ErrorCode::kInvalidArgument, "backend-addresses: {} backends, at most {}",
                     svc.backends.size(), LB_MAX_BACKENDS);
  for (const auto& b : svc.backends) {
    // Fail closed: an id in a frontend's slots names a backend of the frontend's family only.
    if (b.ip.family() != svc.frontend.ip.family())
      return makeError(ErrorCode::kInvalidArgument,
                       "backend {}: its family differs from frontend {}'s", b.ip.toString(),
                       svc.frontend.ip.toString());
    if (b.port == 0)
      return makeError(ErrorCode::kInvalidArgument, "backend {}: port is 0", b.ip.toString());
  }
  return okStatus();
}

Result<uint32_t> Manager::allocateId(uint32_t wanted) {
  if (wanted != 0) {
    if (frontends_.count(wanted))
      return makeError(ErrorCode::kAlreadyExists, "service id {} is in use", wanted);
    next_id_ = std::max(next_id_, wanted + 1);
    return wanted;
  }
  for (uint64_t i = 0; i < 0xffffffffull; i++) {
    uint32_t id = next_id_++;
    if (next_id_ == 0) next_id_ = 1;
    if (id != 0 && !frontends_.count(id)) return id;
  }
  return makeError(ErrorCode::kResourceExhausted, "no free service id");
}

Result<uint32_t> Manager::acquireBackend(const Backend& b, Protocol proto, Batch& batch) {
  BackendKey key{b.ip, b.port, static_cast<uint8_t>(proto)};
  auto it = backends_.find(key);
  if (it == backends_.end()) {
    uint32_t id = 0;
    for (uint64_t i = 0; i < 0xffffffffull; i++) {
      uint32_t c = next_backend_id_++;
      if (next_backend_id_ == 0) next_backend_id_ = 1;
      if (c != 0 && !backend_by_id_.count(c)) {
        id = c;
        break;
      }
    }
    if (id == 0) return makeError(ErrorCode::kResourceExhausted, "no free backend id");
    BackendRef ref;
    ref.id = id;
    ref.state = static_cast<uint8_t>(b.state);
    it = backends_.emplace(key, ref).first;
    backend_by_id_[id] = key;
    planBackendWrite(id, key, ref.state, batch);
  }
  it->second.refs++;
  if (b.state == BackendState::kActive) it->second.active_refs++;
  batch.touched.push_back(it->second.id);
  return it->second.id;
}

namespace {
bool localOnly(FrontendType type, TrafficPolicy etp) {
  return type != FrontendType::kClusterIp && etp == TrafficPolicy::kLocal;
}
}  // namespace

LbService Manager::specOf(const FrontendState& st) const {
  LbService s;
  s.id = st.id;
  s.frontend = st.frontend;
  s.type = st.type;
  s.backends.reserve(st.backends.size());
  for (const auto& e : st.backends) s.backends.push_back(e.spec);
  s.session_affinity = st.session_affinity;
  s.affinity_timeout = st.affinity_timeout;
  s.ext_traffic_policy = st.ext_traffic_policy;
  s.algorithm = st.algorithm;
  if (st.owner != nullptr) s.owner = *st.owner;
  s.port_name = st.port_name;
  return s;
}

void Manager::planUpsert(FrontendState& st, LbService spec, Batch& batch) {
  bool fresh = st.backends.empty() && st.count == 0 && st.id == 0;
  std::pmr::vector<BackendEntry> entries(&arena_);
  entries.reserve(spec.backends.size());
  // Scratch vectors kept by the Manager: a large sync allocates nothing here but `entries`.
  auto& active = scratch_active_;   // the external scope's slots
  auto& all_active = scratch_all_;  // the internal scope's, when there are two scopes
  active.clear();
  all_active.clear();
  bool two = localOnly(spec.type, spec.ext_traffic_policy);
  for (const auto& b : spec.backends) {
    auto id = acquireBackend(b, spec.frontend.proto, batch);
    if (!id.ok()) continue;  // exhausted: the frontend runs with the backends it could get
    entries.push_back({b, *id});
    if (b.state != BackendState::kActive) continue;
    all_active.push_back(*id);
    if (!two || b.local) active.push_back(*id);
  }

  // The slots currently in force are the active ids of the previous spec, in order.
  auto& old_active = scratch_old_active_;
  auto& old_all = scratch_old_all_;
  old_active.clear();
  old_all.clear();
  if (!fresh) {
    bool old_local_only = localOnly(st.type, st.ext_traffic_policy);
    for (const auto& e : st.backends) {
      if (e.spec.state != BackendState::kActive) continue;
      old_all.push_back(e.id);
      if (!old_local_only || e.spec.local) old_active.push_back(e.id);
    }
  }

  if ((spec.id != st.id || fresh) && spec.frontend.ip.isV4()) {
    lb4_reverse_nat rn{};
    rn.address = spec.frontend.ip.v4NetworkOrder();
    rn.port = htons(spec.frontend.port);
    batch.revnat_keys.push_back(spec.id);
    batch.revnat_vals.push_back(rn);
  } else if (spec.id != st.id || fresh) {
    lb6_reverse_nat rn{};
    std::memcpy(rn.address.ip6, spec.frontend.ip.bytes().data(), 16);
    rn.port = htons(spec.frontend.port);
    batch.revnat6_keys.push_back(spec.id);
    batch.revnat6_vals.push_back(rn);
  }

  uint16_t maglev_size =
      spec.algorithm == LbAlgorithm::kMaglev ? static_cast<uint16_t>(cfg_.maglev_table_size) : 0;
  // A restored frontend's backends are in slot order, so one scope's slots compare as they are;
  // with two scopes the restore cannot tell which backends are local: those are rewritten.
  bool slots_changed = fresh || old_active != active || (st.restored && (two || st.two_scopes)) ||
                       two != st.two_scopes || (two && old_all != all_active) ||
                       maglev_size != st.maglev_size;
  uint16_t gen = st.gen & LB_GEN_MASK;
  if (slots_changed) {
    if (!fresh) gen = static_cast<uint16_t>((st.gen + 1) & LB_GEN_MASK);
    for (size_t i = 0; i < active.size(); i++) {
      batch.slot_keys.push_back(lb4_slot_key{spec.id, gen, static_cast<uint16_t>(i + 1)});
      batch.slot_vals.push_back(active[i]);
    }
    if (two)
      for (size_t i = 0; i < all_active.size(); i++) {
        batch.slot_keys.push_back(lb4_slot_key{
            spec.id, static_cast<uint16_t>(gen | LB_GEN_INTERNAL), static_cast<uint16_t>(i + 1)});
        batch.slot_vals.push_back(all_active[i]);
      }
    if (maglev_size != 0) {
      planMaglev(spec.id, gen, active, batch);
      if (two) planMaglev(spec.id, static_cast<uint16_t>(gen | LB_GEN_INTERNAL), all_active, batch);
    }
    if (!fresh) {
      planMaglevDelete(st, batch);
      for (uint16_t s = 1; s <= st.count; s++) batch.slot_deletes.push_back({spec.id, st.gen, s});
      for (uint16_t s = 1; s <= st.internal_count; s++)
        batch.slot_deletes.push_back({spec.id, static_cast<uint16_t>(st.gen | LB_GEN_INTERNAL), s});
    }
  }
  lb4_service v{};
  v.affinity_timeout = spec.session_affinity ? spec.affinity_timeout : 0;
  v.rev_nat_index = spec.id;
  v.count = static_cast<uint16_t>(slots_changed ? active.size() : st.count);
  v.gen = gen;
  v.flags = flagsOf(spec);
  v.flags2 = two ? SVC_F2_TWO_SCOPES : 0;
  uint16_t new_maglev = slots_changed ? maglev_size : st.maglev_size;
  if (new_maglev != 0) {
    v.flags2 |= SVC_F2_MAGLEV;
    v.maglev_size = new_maglev;
  }
  uint16_t internal_count = 0;
  if (two) {
    // Before the external entry: a lookup follows TWO_SCOPES only once the internal one exists.
    lb4_service iv = v;
    internal_count = static_cast<uint16_t>(slots_changed ? all_active.size() : st.internal_count);
    iv.count = internal_count;
    iv.gen = static_cast<uint16_t>(gen | LB_GEN_INTERNAL);
    iv.flags2 = static_cast<uint8_t>(SVC_F2_SCOPE_INTERNAL | (v.flags2 & SVC_F2_MAGLEV));
    planFrontendWrite(spec.frontend, LB_SCOPE_INTERNAL, iv, batch);
  } else if (st.two_scopes && spec.frontend.ip.isV4()) {
    batch.fe_deletes.push_back(internalFrontendKey(spec.frontend));
  } else if (st.two_scopes) {
    batch.fe6_deletes.push_back(frontendKey6(spec.frontend, LB_SCOPE_INTERNAL));
  }
  planFrontendWrite(spec.frontend, LB_SCOPE_EXTERNAL, v, batch);

  // References of the previous spec are dropped after the flip, so a backend that stays never
  // leaves the backends map, and one that goes leaves it only when no slot points at it.
  for (const auto& e : st.backends)
    batch.backend_releases.push_back({e.id, e.spec.state == BackendState::kActive});

  st.id = spec.id;
  st.frontend = spec.frontend;
  st.type = spec.type;
  st.ext_traffic_policy = spec.ext_traffic_policy;
  st.algorithm = spec.algorithm;
  st.session_affinity = spec.session_affinity;
  st.affinity_timeout = spec.affinity_timeout;
  st.port_name = std::move(spec.port_name);
  st.backends = std::move(entries);
  st.gen = gen;
  st.count = v.count;
  st.two_scopes = two;
  st.internal_count = internal_count;
  st.maglev_size = new_maglev;
  st.restored = false;
}

void Manager::planMaglev(uint32_t id, uint16_t gen, const std::vector<uint32_t>& ids,
                         Batch& batch) {
  if (ids.empty()) return;  // count 0: the datapath refuses before it reads a table
  std::vector<std::string> names;
  names.reserve(ids.size());
  for (uint32_t b : ids) {
    const auto& [addr, port, proto] = backend_by_id_.at(b);
    names.push_back(fmt::format("{}:{}/{}", addr.toString(), port, proto));
  }
  auto table = maglevTable(names, cfg_.maglev_table_size);
  for (size_t off = 0; off < table.size(); off += LB_MAGLEV_CHUNK) {
    lb4_maglev_chunk chunk{};
    for (size_t j = 0; j < LB_MAGLEV_CHUNK && off + j < table.size(); j++)
      chunk.backend_ids[j] = ids[table[off + j]];
    batch.maglev_keys.push_back({id, gen, static_cast<uint16_t>(off / LB_MAGLEV_CHUNK)});
    batch.maglev_vals.push_back(chunk);
  }
}

void Manager::planMaglevDelete(const FrontendState& st, Batch& batch) {
  if (st.maglev_size == 0) return;
  uint16_t chunks = static_cast<uint16_t>((st.maglev_size + LB_MAGLEV_CHUNK - 1) / LB_MAGLEV_CHUNK);
  for (uint16_t c = 0; c < chunks; c++) {
    if (st.count > 0) batch.maglev_deletes.push_back({st.id, st.gen, c});
    if (st.two_scopes && st.internal_count > 0)
      batch.maglev_deletes.push_back({st.id, static_cast<uint16_t>(st.gen | LB_GEN_INTERNAL), c});
  }
}

void Manager::planDelete(const FrontendState& st, Batch& batch) {
  planMaglevDelete(st, batch);
  for (uint16_t s = 1; s <= st.count; s++) batch.slot_deletes.push_back({st.id, st.gen, s});
  for (uint16_t s = 1; s <= st.internal_count; s++)
    batch.slot_deletes.push_back({st.id, static_cast<uint16_t>(st.gen | LB_GEN_INTERNAL), s});
  for (const auto& e : st.backends)
    batch.backend_releases.push_back({e.id, e.spec.state == BackendState::kActive});
}

Status Manager::removeFrontendEntries(const FrontendState& st) {
  // The external entry first: it is what sends lookups to the internal one.
  if (!st.frontend.ip.isV4()) {
    CILIUM_RETURN_IF_ERROR(asStatus(maps_.services6->remove(frontendKey6(st.frontend))));
    if (st.two_scopes)
      CILIUM_RETURN_IF_ERROR(
          asStatus(maps_.services6->remove(frontendKey6(st.frontend, LB_SCOPE_INTERNAL))));
    (void)maps_.revnat6->remove(st.id);
    return okStatus();
  }
  CILIUM_RETURN_IF_ERROR(asStatus(maps_.services->remove(frontendKey(st.frontend))));
  if (st.two_scopes)
    CILIUM_RETURN_IF_ERROR(asStatus(maps_.services->remove(internalFrontendKey(st.frontend))));
  (void)maps_.revnat->remove(st.id);
  return okStatus();
}

void Manager::Writes::clear() {
  backend_keys.clear();
  backend_vals.clear();
  revnat_keys.clear();
  revnat_vals.clear();
  slot_keys.clear();
  slot_vals.clear();
  maglev_keys.clear();
  maglev_vals.clear();
  fe_keys.clear();
  fe_vals.clear();
  backend6_keys.clear();
  backend6_vals.clear();
  revnat6_keys.clear();
  revnat6_vals.clear();
  fe6_keys.clear();
  fe6_vals.clear();
}

Status Manager::writeMaps(const Writes& w) const {
  // Order matters: everything a frontend points at exists before the frontend is written.
  // (validate() refused IPv6 frontends without the IPv6 maps: their vectors are empty then.)
  CILIUM_RETURN_IF_ERROR(writeAll(maps_.backends, w.backend_keys, w.backend_vals));
  CILIUM_RETURN_IF_ERROR(writeAll(maps_.backends6, w.backend6_keys, w.backend6_vals));
  CILIUM_RETURN_IF_ERROR(writeAll(maps_.revnat, w.revnat_keys, w.revnat_vals));
  CILIUM_RETURN_IF_ERROR(writeAll(maps_.revnat6, w.revnat6_keys, w.revnat6_vals));
  CILIUM_RETURN_IF_ERROR(writeAll(maps_.slots, w.slot_keys, w.slot_vals));
  if (maps_.maglev != nullptr)
    CILIUM_RETURN_IF_ERROR(writeAll(maps_.maglev, w.maglev_keys, w.maglev_vals));
  CILIUM_RETURN_IF_ERROR(writeAll(maps_.services6, w.fe6_keys, w.fe6_vals));
  return writeAll(maps_.services, w.fe_keys, w.fe_vals);
}

Status Manager::flush(Batch& batch) {
  CILIUM_RETURN_IF_ERROR(writeMaps(batch));
  return finishRemovals(batch);
}

Status Manager::finishRemovals(Batch& batch) {
  // What a frontend pointed at is removed only after the frontend stopped pointing at it.
  Status first = okStatus();
  auto keep = [&](Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  };
  for (const auto& k : batch.fe_deletes) keep(asStatus(maps_.services->remove(k)));
  for (const auto& k : batch.fe6_deletes) keep(asStatus(maps_.services6->remove(k)));
  for (const auto& k : batch.slot_deletes) keep(asStatus(maps_.slots->remove(k)));
  if (maps_.maglev != nullptr)
    for (const auto& k : batch.maglev_deletes) keep(asStatus(maps_.maglev->remove(k)));
  for (const auto& [id, was_active] : batch.backend_releases) {
    auto kit = backend_by_id_.find(id);
    if (kit == backend_by_id_.end()) continue;
    auto it = backends_.find(kit->second);
    if (it == backends_.end()) continue;
    if (was_active && it->second.active_refs > 0) it->second.active_refs--;
    if (it->second.refs > 0 && --it->second.refs > 0) continue;
    if (std::get<0>(kit->second).isV4())
      keep(asStatus(maps_.backends->remove(id)));
    else
      keep(asStatus(maps_.backends6->remove(id)));
    backends_.erase(it);
    backend_by_id_.erase(kit);
  }
  // A backend serving several frontends is active while any of them lists it as active; the
  // state only matters to session affinity, slots decide what new connections pick.
  for (uint32_t id : batch.touched) {
    auto kit = backend_by_id_.find(id);
    if (kit == backend_by_id_.end()) continue;
    auto& ref = backends_.at(kit->second);
    uint8_t want = ref.active_refs > 0 ? LB_BACKEND_ACTIVE : LB_BACKEND_TERMINATING;
    if (ref.state == want) continue;
    ref.state = want;
    keep(writeBackendState(id, kit->second, want));
  }
  return first;
}

Status Manager::upsertLocked(std::span<const Service> svcs) {
  // First pass: everything is checked before anything changes. The expansion is not kept: a
  // second one is cheaper than holding a copy of every frontend of a 100k-Service sync.
  std::vector<LbService>& fes = scratch_fes_;
  size_t total = 0;
  size_t skipped_v6 = 0;
  const ServiceName* first_skipped = nullptr;
  for (const auto& svc : svcs) {
    size_t before = skipped_v6;
    CILIUM_RETURN_IF_ERROR(expandServiceInto(svc, cfg_, fes, &skipped_v6));
    if (skipped_v6 != before && first_skipped == nullptr) first_skipped = &svc.name;
    for (const auto& fe : fes) {
      CILIUM_RETURN_IF_ERROR(validate(fe));
      auto it = by_frontend_.find(fe.frontend);
      if (it != by_frontend_.end()) {
        const auto& st = frontends_.at(it->second);
        if (!st.restored && (st.owner == nullptr || !(*st.owner == svc.name)))
          return makeError(ErrorCode::kAlreadyExists, "{}: frontend {}:{}/{} belongs to {}",
                           svc.name.str(), fe.frontend.ip.toString(), fe.frontend.port,
                           protocolName(fe.frontend.proto),
                           st.owner == nullptr ? "the REST API" : st.owner->str());
      }
    }
    total += fes.size();
  }
  if (skipped_v6 != 0)
    log()->info("IPv6 frontends skipped: enable-ipv6 is off count={} first_service={}", skipped_v6,
                first_skipped->str());
  Batch batch;
  // A large sync sizes the tables once instead of rehashing on the way; a small change leaves
  // them alone (reserving size + 1 could rehash a 100k table for one Service).
  if (total > 64) {
    frontends_.reserve(frontends_.size() + total);
    by_frontend_.reserve(by_frontend_.size() + total);
    by_owner_.reserve(by_owner_.size() + svcs.size());
  }
  // A large sync writes the maps chunk by chunk on a second thread while this one plans the
  // next chunk: the kernel's map writes then overlap the bookkeeping instead of following it,
  // and the write vectors stay chunk-sized (reused) instead of growing to the whole sync. A
  // chunk ends at a Service boundary, so a frontend's slots, backends and reverse NAT entry are
  // always written before the frontend, in the same chunk or an earlier one. Removals and
  // backend releases wait until every chunk is written, as in a small change.
  size_t chunk = std::max<uint32_t>(cfg_.write_chunk, 1);
  size_t first = std::min(total, chunk);
  batch.fe_keys.reserve(first);
  batch.fe_vals.reserve(first);
  batch.revnat_keys.reserve(first);
  batch.revnat_vals.reserve(first);
  batch.slot_keys.reserve(first);
  batch.slot_vals.reserve(first);
  batch.touched.reserve(total);
  Writes written;              // the chunk the writer thread has; outlives the future
  std::future<Status> writer;  // its destructor waits for the thread, on every return
  auto handOff = [&]() -> Status {
    if (writer.valid()) CILIUM_RETURN_IF_ERROR(writer.get());
    std::swap(static_cast<Writes&>(batch), written);
    batch.Writes::clear();
    try {
      writer = std::async(std::launch::async, [this, &written] { return writeMaps(written); });
    } catch (const std::system_error&) {
      return writeMaps(written);  // no thread to be had: this chunk is written in line
    }
    return okStatus();
  };
  // Every planned write in the maps: before a removal, and at the end.
  auto drain = [&]() -> Status {
    if (writer.valid()) CILIUM_RETURN_IF_ERROR(writer.get());
    CILIUM_RETURN_IF_ERROR(writeMaps(batch));
    batch.Writes::clear();
    return okStatus();
  };
  for (const auto& svc : svcs) {
    // Cannot fail: the same expansion passed above.
    CILIUM_RETURN_IF_ERROR(expandServiceInto(svc, cfg_, fes));
    // Created up front so that its frontends can point at its key.
    auto oit = by_owner_.try_emplace(svc.name).first;
    std::pmr::vector<uint32_t> keep(&arena_);
    keep.reserve(fes.size());
    for (auto& fe : fes) {
      auto it = by_frontend_.find(fe.frontend);
      FrontendState* st;
      if (it != by_frontend_.end()) {
        st = &frontends_.at(it->second);
        fe.id = it->second;
      } else {
        CILIUM_ASSIGN_OR_RETURN(fe.id, allocateId(0));
        by_frontend_.emplace(fe.frontend, fe.id);
        st = &frontends_.try_emplace(fe.id, &arena_).first->second;
      }
      keep.push_back(fe.id);
      planUpsert(*st, std::move(fe), batch);
      st->owner = &oit->first;
    }
    for (uint32_t id : oit->second) {
      if (std::find(keep.begin(), keep.end(), id) != keep.end()) continue;
      auto it = frontends_.find(id);
      if (it == frontends_.end()) continue;
      planDelete(it->second, batch);
      // A write still planned for it (the same Service twice in one sync) must not land after
      // the removal and leave an entry the Manager no longer knows.
      CILIUM_RETURN_IF_ERROR(drain());
      // Deleting the frontend first: slots and backends go only after nothing points at them.
      CILIUM_RETURN_IF_ERROR(removeFrontendEntries(it->second));
      by_frontend_.erase(it->second.frontend);
      frontends_.erase(it);
    }
    if (keep.empty())
      by_owner_.erase(oit);
    else
      oit->second = std::move(keep);
    // Maglev tables (a few hundred chunks per frontend) also end a chunk, so that a sync of
    // Maglev frontends never holds all their tables at once.
    if ((total > chunk && batch.fe_keys.size() >= chunk) || batch.maglev_keys.size() >= 4 * chunk)
      CILIUM_RETURN_IF_ERROR(handOff());
  }
  CILIUM_RETURN_IF_ERROR(drain());
  return finishRemovals(batch);
}

Status Manager::upsertService(const Service& svc) {
  std::lock_guard lock(mu_);
  auto st = upsertLocked(std::span<const Service>(&svc, 1));
  if (!st.ok()) log()->warn("service {} not programmed: {}", svc.name.str(), st.error().message());
  return st;
}

Status Manager::upsertServices(std::span<const Service> svcs) {
  std::lock_guard lock(mu_);
  return upsertLocked(svcs);
}

Status Manager::deleteService(const ServiceName& name) {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(name);
  if (it == by_owner_.end())
    return makeError(ErrorCode::kNotFound, "service {} is unknown", name.str());
  Batch batch;
  for (uint32_t id : it->second) {
    auto fit = frontends_.find(id);
    if (fit == frontends_.end()) continue;
    CILIUM_RETURN_IF_ERROR(removeFrontendEntries(fit->second));
    planDelete(fit->second, batch);
    by_frontend_.erase(fit->second.frontend);
    frontends_.erase(fit);
  }
  by_owner_.erase(it);
  return flush(batch);
}

Result<uint32_t> Manager::upsertFrontend(LbService svc) {
  std::lock_guard lock(mu_);
  CILIUM_RETURN_IF_ERROR(validate(svc));
  auto it = by_frontend_.find(svc.frontend);
  uint32_t id;
  if (it != by_frontend_.end()) {
    id = it->second;
    if (svc.id != 0 && svc.id != id)
      return makeError(ErrorCode::kAlreadyExists, "frontend {}:{} already has id {}",
                       svc.frontend.ip.toString(), svc.frontend.port, id);
    auto& st = frontends_.at(id);
    if (st.owner != nullptr && !st.restored)
      return makeError(ErrorCode::kFailedPrecondition,
                       "frontend {}:{} belongs to service {}; change it there",
                       svc.frontend.ip.toString(), svc.frontend.port, st.owner->str());
  } else {
    CILIUM_ASSIGN_OR_RETURN(id, allocateId(svc.id));
    by_frontend_[svc.frontend] = id;
    frontends_.try_emplace(id, &arena_);
  }
  svc.id = id;
  Batch batch;
  auto& st = frontends_.at(id);
  planUpsert(st, std::move(svc), batch);
  st.owner = nullptr;
  CILIUM_RETURN_IF_ERROR(flush(batch));
  return id;
}

Status Manager::deleteFrontend(uint32_t id) {
  std::lock_guard lock(mu_);
  auto it = frontends_.find(id);
  if (it == frontends_.end()) return makeError(ErrorCode::kNotFound, "service {} not found", id);
  CILIUM_RETURN_IF_ERROR(removeFrontendEntries(it->second));
  Batch batch;
  planDelete(it->second, batch);
  if (it->second.owner != nullptr) {
    auto oit = by_owner_.find(*it->second.owner);
    if (oit != by_owner_.end()) {
      auto& owned = oit->second;
      owned.erase(std::remove(owned.begin(), owned.end(), id), owned.end());
      if (owned.empty()) by_owner_.erase(oit);
    }
  }
  by_frontend_.erase(it->second.frontend);
  frontends_.erase(it);
  return flush(batch);
}

std::vector<LbService> Manager::list() const {
  std::lock_guard lock(mu_);
  std::vector<LbService> out;
  out.reserve(frontends_.size());
  for (const auto& [id, st] : frontends_) out.push_back(specOf(st));
  std::sort(out.begin(), out.end(),
            [](const LbService& a, const LbService& b) { return a.id < b.id; });
  return out;
}

std::optional<LbService> Manager::get(uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = frontends_.find(id);
  if (it == frontends_.end()) return std::nullopt;
  return specOf(it->second);
}

size_t Manager::frontendCount() const {
  std::lock_guard lock(mu_);
  return frontends_.size();
}

Status Manager::restore() {
  std::lock_guard lock(mu_);
  frontends_.clear();
  by_frontend_.clear();
  by_owner_.clear();
  backends_.clear();
  backend_by_id_.clear();
  auto addBackend = [&](uint32_t id, const IpAddr& ip, __be16 port, uint8_t proto, uint8_t state) {
    BackendKey key{ip, ntohs(port), proto};
    BackendRef ref;
    ref.id = id;
    ref.state = state;
    backends_[key] = ref;
    backend_by_id_[id] = key;
    next_backend_id_ = std::max(next_backend_id_, id + 1);
    return true;
  };
  CILIUM_RETURN_IF_ERROR(maps_.backends->forEach([&](const uint32_t& id, const lb4_backend& v) {
    return addBackend(id, IpAddr::fromNetworkOrder(v.address), v.port, v.proto, v.state);
  }));
  if (maps_.backends6 != nullptr)
    CILIUM_RETURN_IF_ERROR(maps_.backends6->forEach([&](const uint32_t& id, const lb6_backend& v) {
      return addBackend(id, IpAddr::fromBytes(IpFamily::kV6, v.address.ip6), v.port, v.proto,
                        v.state);
    }));
  // Every slot in one pass (batched reads) instead of one lookup per slot: packed
  // (service id, generation, slot) -> backend id.
  auto slot_key = [](const lb4_slot_key& k) {
    return uint64_t{k.rev_nat_index} << 32 | uint64_t{k.gen} << 16 | k.slot;
  };
  std::unordered_map<uint64_t, uint32_t> slot_backends;
  CILIUM_RETURN_IF_ERROR(maps_.slots->forEach([&](const lb4_slot_key& k, const uint32_t& id) {
    slot_backends.emplace(slot_key(k), id);
    return true;
  }));
  // Both families' frontends: service ids come from one id space.
  std::vector<std::pair<Frontend, lb4_service>> fes;
  std::unordered_map<uint32_t, lb4_service> internal;  // by service id
  auto addFrontend = [&](const IpAddr& ip, __be16 dport, uint8_t proto, uint8_t scope,
                         const lb4_service& v) {
    if (scope == LB_SCOPE_INTERNAL)
      internal[v.rev_nat_index] = v;
    else
      fes.emplace_back(Frontend{ip, ntohs(dport), static_cast<Protocol>(proto)}, v);
    return true;
  };
  CILIUM_RETURN_IF_ERROR(maps_.services->forEach([&](const lb4_key& k, const lb4_service& v) {
    return addFrontend(IpAddr::fromNetworkOrder(k.address), k.dport, k.proto, k.scope, v);
  }));
  if (maps_.services6 != nullptr)
    CILIUM_RETURN_IF_ERROR(maps_.services6->forEach([&](const lb6_key& k, const lb4_service& v) {
      return addFrontend(IpAddr::fromBytes(IpFamily::kV6, k.address.ip6), k.dport, k.proto, k.scope,
                         v);
    }));
  for (const auto& [fe, v] : fes) {
    FrontendState st(&arena_);
    st.id = v.rev_nat_index;
    st.frontend = fe;
    st.type = typeOf(v.flags);
    st.session_affinity = v.flags & SVC_F_AFFINITY;
    st.affinity_timeout = v.affinity_timeout;
    st.ext_traffic_policy =
        (v.flags & SVC_F_EXT_LOCAL) ? TrafficPolicy::kLocal : TrafficPolicy::kCluster;
    st.gen = v.gen;
    st.count = v.count;
    st.restored = true;
    if (v.flags2 & SVC_F2_MAGLEV) {
      st.maglev_size = v.maglev_size;
      st.algorithm = LbAlgorithm::kMaglev;
    }
    // Slots of both scopes, each backend once: the internal scope lists the remote ones too.
    std::vector<lb4_slot_key> slots;
    for (uint16_t s = 1; s <= v.count; s++) slots.push_back({v.rev_nat_index, v.gen, s});
    if (auto in = internal.find(v.rev_nat_index);
        in != internal.end() && (v.flags2 & SVC_F2_TWO_SCOPES)) {
      st.two_scopes = true;
      st.internal_count = in->second.count;
      for (uint16_t s = 1; s <= in->second.count; s++)
        slots.push_back({v.rev_nat_index, in->second.gen, s});
    }
    for (const auto& sk : slots) {
      auto slot = slot_backends.find(slot_key(sk));
      if (slot == slot_backends.end()) continue;
      const uint32_t* id = &slot->second;
      if (std::any_of(st.backends.begin(), st.backends.end(),
                      [&](const BackendEntry& e) { return e.id == *id; }))
        continue;
      auto kit = backend_by_id_.find(*id);
      if (kit == backend_by_id_.end()) continue;
      // Fail closed: a slot naming the other family's backend is left out.
      if (std::get<0>(kit->second).family() != fe.ip.family()) continue;
      auto& ref = backends_[kit->second];
      ref.refs++;
      ref.active_refs++;  // slots hold active backends only
      Backend b;
      b.ip = std::get<0>(kit->second);
      b.port = std::get<1>(kit->second);
      b.state = static_cast<BackendState>(ref.state);
      b.local = true;  // unknown after a restart; keeps eTP=Local frontends' slots as they are
      st.backends.push_back({b, *id});
    }
    next_id_ = std::max(next_id_, v.rev_nat_index + 1);
    by_frontend_[st.frontend] = v.rev_nat_index;
    frontends_.insert_or_assign(v.rev_nat_index, std::move(st));
  }
  log()->info("restored services frontends={} backends={}", frontends_.size(), backends_.size());
  return okStatus();
}

Status Manager::pruneRestored() {
  std::lock_guard lock(mu_);
  Batch batch;
  size_t n = 0;
  for (auto it = frontends_.begin(); it != frontends_.end();) {
    if (!it->second.restored) {
      ++it;
      continue;
    }
    CILIUM_RETURN_IF_ERROR(removeFrontendEntries(it->second));
    planDelete(it->second, batch);
    by_frontend_.erase(it->second.frontend);
    it = frontends_.erase(it);
    n++;
  }
  // Backends only terminating connections used, which no frontend lists any more.
  for (const auto& [key, ref] : backends_)
    if (ref.refs == 0) batch.backend_releases.push_back({ref.id, false});
  log()->info("pruned restored service frontends={}", n);
  return flush(batch);
}

}  // namespace cilium::service
