// The policy engine: repository, selector cache, resolution and incremental deltas.
#include "agent/policy/policy.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "agent/common/log.h"
#include "agent/labels/k8s.h"
#include "agent/policy/map_state.h"

namespace cilium::policy {

std::vector<NamedPort> NamedPortTable::lookup(const labels::Labels& identity_labels,
                                              std::string_view name) const {
  std::lock_guard lock(mu_);
  std::vector<NamedPort> out;
  auto by_labels = refs_.find(identity_labels);
  if (by_labels == refs_.end()) return out;
  const auto& ports = by_labels->second;
  for (auto it = ports.lower_bound({std::string(name), 0, Protocol::kAny});
       it != ports.end() && std::get<0>(it->first) == name; ++it)
    out.push_back(
        NamedPort{std::get<0>(it->first), std::get<1>(it->first), std::get<2>(it->first)});
  return out;
}

bool NamedPortTable::setPod(const std::string& key, const labels::Labels& identity_labels,
                            std::vector<NamedPort> ports) {
  std::lock_guard lock(mu_);
  Pod pod{identity_labels, std::move(ports)};
  std::sort(pod.ports.begin(), pod.ports.end(), [](const NamedPort& a, const NamedPort& b) {
    return std::tie(a.name, a.port, a.protocol) < std::tie(b.name, b.port, b.protocol);
  });
  pod.ports.erase(std::unique(pod.ports.begin(), pod.ports.end()), pod.ports.end());
  auto it = pods_.find(key);
  if (it != pods_.end() && it->second.labels == pod.labels && it->second.ports == pod.ports)
    return false;
  // Add before removing: a port that stays never drops to zero references on the way.
  bool changed = addLocked(pod);
  if (it != pods_.end()) {
    changed = removeLocked(it->second) || changed;
    pods_.erase(it);
  }
  if (!pod.ports.empty()) pods_.emplace(key, std::move(pod));
  return changed;
}

bool NamedPortTable::removePod(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(key);
  if (it == pods_.end()) return false;
  bool changed = removeLocked(it->second);
  pods_.erase(it);
  return changed;
}

bool NamedPortTable::addLocked(const Pod& pod) {
  bool changed = false;
  if (pod.ports.empty()) return false;
  auto& ports = refs_[pod.labels];
  for (const auto& p : pod.ports)
    if (ports[{p.name, p.port, p.protocol}]++ == 0) changed = true;
  return changed;
}

bool NamedPortTable::removeLocked(const Pod& pod) {
  bool changed = false;
  auto by_labels = refs_.find(pod.labels);
  if (by_labels == refs_.end()) return false;
  auto& ports = by_labels->second;
  for (const auto& p : pod.ports) {
    auto it = ports.find({p.name, p.port, p.protocol});
    if (it == ports.end()) continue;
    if (--it->second == 0) {
      ports.erase(it);
      changed = true;
    }
  }
  if (ports.empty()) refs_.erase(by_labels);
  return changed;
}

namespace {

using detail::KeySpec;
using detail::PackedEntry;

auto& log() {
  static auto l = cilium::logger("policy");
  return l;
}

constexpr Protocol kAnyExpansion[] = {Protocol::kTcp, Protocol::kUdp, Protocol::kSctp};

labels::LabelSelector reservedSelector(std::string_view name) {
  labels::LabelSelector s;
  s.addMatch(labels::Source::kReserved, std::string(name), "");
  return s;
}

// The selectors one entity stands for (none for "none").
std::vector<PeerSelector> entitySelectors(Entity e) {
  switch (e) {
    case Entity::kAll: return {PeerSelector::wildcard()};
    case Entity::kWorld:
      // CIDR identities carry reserved:world too, so this also selects every CIDR identity.
      return {PeerSelector::ofLabels(reservedSelector("world")),
              PeerSelector::ofLabels(reservedSelector("world-ipv4")),
              PeerSelector::ofLabels(reservedSelector("world-ipv6"))};
    case Entity::kWorldIpv4: return {PeerSelector::ofLabels(reservedSelector("world-ipv4"))};
    case Entity::kWorldIpv6: return {PeerSelector::ofLabels(reservedSelector("world-ipv6"))};
    case Entity::kCluster: return {PeerSelector::cluster()};
    case Entity::kHost: return {PeerSelector::ofLabels(reservedSelector("host"))};
    case Entity::kRemoteNode: return {PeerSelector::ofLabels(reservedSelector("remote-node"))};
    case Entity::kKubeApiServer:
      return {PeerSelector::ofLabels(reservedSelector("kube-apiserver"))};
    case Entity::kInit: return {PeerSelector::ofLabels(reservedSelector("init"))};
    case Entity::kHealth: return {PeerSelector::ofLabels(reservedSelector("health"))};
    case Entity::kUnmanaged: return {PeerSelector::ofLabels(reservedSelector("unmanaged"))};
    case Entity::kIngress: return {PeerSelector::ofLabels(reservedSelector("ingress"))};
    case Entity::kNone: return {};
  }
  return {};
}

// The peer selectors of one ingress/egress element.
std::vector<PeerSelector> peerSelectors(const PeerRule& pr) {
  std::vector<PeerSelector> out;
  if (!pr.hasPeers()) {
    // No peer field: ports alone allow every peer; nothing at all allows nothing.
    if (!pr.ports.empty()) out.push_back(PeerSelector::wildcard());
    return out;
  }
  for (const auto& s : pr.endpoints) out.push_back(PeerSelector::ofLabels(s));
  for (auto e : pr.entities)
    for (auto& s : entitySelectors(e)) out.push_back(std::move(s));
  for (const auto& c : pr.cidrs) out.push_back(PeerSelector::ofCidr(c, {}));
  for (const auto& c : pr.cidr_sets)
    out.push_back(c.selects_pods ? PeerSelector::ofIpBlock(c.cidr, c.except)
                                 : PeerSelector::ofCidr(c.cidr, c.except));
  for (const auto& f : pr.fqdns) out.push_back(PeerSelector::ofFqdn(f.pattern()));
  return out;
}

bool hasNamedPort(const PeerRule& pr) {
  for (const auto& port_rule : pr.ports)
    for (const auto& p : port_rule.ports)
      if (!p.name.empty()) return true;
  return false;
}

// A rule in the repository with its selectors in the cache.
struct StoredRule {
  uint64_t seq = 0;
  Owner owner = Owner::kApi;
  Rule rule;
  struct Peer {
    Direction dir;
    bool deny;
    const PeerRule* source;
    std::vector<CachedSelector*> selectors;
    // The egress named ports of `source`, which resolve per destination identity: "every peer"
    // stands for every cluster identity here, as only those have pods (never identity 0 with
    // every number any pod gives the name). The other Peer of `source` holds its other ports.
    bool named_ports = false;
    // Per entry of source->ports: its L7 rules (null: none). Shared with the contributions of
    // attached endpoints, which may outlive the rule until they are regenerated.
    std::vector<std::shared_ptr<const L7Rules>> port_l7;
    bool hasL7() const {
      return std::any_of(port_l7.begin(), port_l7.end(), [](const auto& l) { return l != nullptr; });
    }
  };
  std::vector<Peer> peers;
};

// What one (rule element, selector set) contributes to an endpoint: keys for every selected
// identity with each spec.
struct Contribution {
  uint8_t dir = 0;
  bool deny = false;
  std::vector<CachedSelector*> selectors;
  bool host_only = false;      // allow-localhost: selects exactly reserved:host
  std::vector<uint64_t> lows;  // packLow() of each spec
  // Egress named ports (name, protocol; kAny: any of them), resolved for each selected identity
  // on that identity's pods instead of `lows`.
  std::vector<std::pair<std::string, Protocol>> named;
  // The L7 rules of this port rule (an allow): its keys redirect to the proxy of their kind.
  std::shared_ptr<const L7Rules> l7;
  uint8_t flags() const {
    if (deny) return detail::kDeny;
    uint8_t f = detail::kAllow;
    if (l7 && !l7->http.empty()) f |= detail::kRedirectHttp;
    if (l7 && !l7->dns.empty()) f |= detail::kRedirectDns;
    return f;
  }
};

struct Attached {
  Subject subject;
  std::vector<Contribution> contributions;
  bool uses_egress_named_ports = false;
  bool has_l7 = false;  // some contribution redirects to a proxy
  // The map state as the endpoint holds it once pending changes are applied, per identity.
  std::unordered_map<uint32_t, std::vector<PackedEntry>> state;
  // Identities changed since the last hand-out, with their state at that hand-out.
  std::unordered_map<uint32_t, std::vector<PackedEntry>> pending_old;
};

}  // namespace

// The object a rule was derived from, by its labels (decode.h: PolicyObject::objectLabels).
static std::optional<ObjectRef> objectOf(const labels::Labels& lbls) {
  const auto* from = lbls.find(labels::kPolicyDerivedFromLabel);
  const auto* name = lbls.find(labels::kPolicyNameLabel);
  if (from == nullptr || name == nullptr) return std::nullopt;
  const auto* ns = lbls.find(labels::kPolicyNamespaceLabel);
  return ObjectRef{from->value, ns ? ns->value : "", name->value};
}

std::string_view ownerName(Owner o) { return o == Owner::kApi ? "api" : "cluster"; }

struct Engine::Impl {
  identity::Allocator& ids;
  EngineOptions opts;
  CidrIdentityProvider* cidrs;
  const NamedPortProvider* named_ports;
  ipcache::IpCache* addresses;
  identity::Allocator::SubscriptionId subscription = 0;
  ipcache::IpCache::SubscriptionId address_subscription = 0;

  mutable std::mutex mu;
  SelectorCache cache;
  std::vector<std::unique_ptr<StoredRule>> rules;
  uint64_t next_seq = 1;
  uint64_t revision = 1;
  std::unordered_map<uint16_t, Attached> attached;
  std::unordered_map<const CachedSelector*, std::set<uint16_t>> selector_endpoints;

  std::mutex listener_mu;
  std::function<void(const std::vector<uint16_t>&)> listener;
  std::function<void(bool)> outcome_listener;
  std::function<void()> fqdn_listener;

  void outcome(bool ok) {
    std::function<void(bool)> l;
    std::function<void()> f;
    {
      std::lock_guard lock(listener_mu);
      l = outcome_listener;
      if (ok) f = fqdn_listener;
    }
    if (l) l(ok);
    if (f) f();
  }

  Impl(identity::Allocator& a, EngineOptions o, CidrIdentityProvider* c, const NamedPortProvider* n,
       ipcache::IpCache* addrs)
      : ids(a), opts(o), cidrs(c), named_ports(n), addresses(addrs) {}

  // --- Repository (mu held) ---------------------------------------------------------------------

  std::unique_ptr<StoredRule> compile(Rule rule, Owner owner) {
    auto sr = std::make_unique<StoredRule>();
    sr->seq = next_seq++;
    sr->owner = owner;
    sr->rule = std::move(rule);
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      for (bool deny : {false, true}) {
        for (const auto& pr : deny ? sr->rule.denies(d) : sr->rule.allows(d)) {
          bool named = d == Direction::kEgress && hasNamedPort(pr);
          for (bool named_part : {false, true}) {
            if (named_part && !named) continue;
            StoredRule::Peer peer{d, deny, &pr, {}, named_part, {}};
            if (!deny)
              for (const auto& port_rule : pr.ports)
                peer.port_l7.push_back(port_rule.rules.empty()
                                           ? nullptr
                                           : std::make_shared<const L7Rules>(port_rule.rules));
            for (auto ps : peerSelectors(pr)) {
              if (named_part && ps.kind == PeerSelector::Kind::kWildcard)
                ps = PeerSelector::cluster();
              CachedSelector* cs = cache.add(ps);
              if (std::find(peer.selectors.begin(), peer.selectors.end(), cs) !=
                  peer.selectors.end()) {
                cache.remove(cs);
                continue;
              }
              peer.selectors.push_back(cs);
            }
            sr->peers.push_back(std::move(peer));
          }
        }
      }
    }
    return sr;
  }

  void uncompile(StoredRule& sr) {
    for (auto& p : sr.peers)
      for (CachedSelector* cs : p.selectors) cache.remove(cs);
    sr.peers.clear();
  }

  std::vector<uint16_t> endpointsSelectedBy(const std::vector<const Rule*>& changed) const {
    std::vector<uint16_t> out;
    for (const auto& [id, a] : attached) {
      for (const Rule* r : changed) {
        if (r->endpoint_selector.matches(a.subject.labels)) {
          out.push_back(id);
          break;
        }
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // --- Resolution (mu held) ---------------------------------------------------------------------

  // Port specs of one element's toPorts for the subject; empty toPorts = any protocol. Named
  // ports: ingress uses the subject's own port of that name; egress ones are left to the
  // element's named-port Peer (namedLows()).
  // `only`: just that entry of pr.ports (an L7 port rule gets a contribution of its own).
  std::vector<uint64_t> specLows(const PeerRule& pr, Direction dir, const Subject& subject,
                                 std::optional<size_t> only = std::nullopt) const {
    std::vector<KeySpec> specs;
    uint8_t d = static_cast<uint8_t>(dir);
    if (pr.ports.empty()) {
      specs.push_back(KeySpec{});
    } else {
      for (size_t i = 0; i < pr.ports.size(); i++) {
        if (only && *only != i) continue;
        const auto& port_rule = pr.ports[i];
        for (const auto& p : port_rule.ports) {
          std::vector<Protocol> protos;
          if (p.protocol == Protocol::kAny)
            protos.assign(std::begin(kAnyExpansion), std::end(kAnyExpansion));
          else
            protos.push_back(p.protocol);
          if (!p.name.empty()) {
            if (dir == Direction::kEgress) continue;
            for (const auto& np : subject.named_ports)
              if (np.name == p.name && np.port != 0 &&
                  std::find(protos.begin(), protos.end(), np.protocol) != protos.end())
                specs.push_back(KeySpec{static_cast<uint8_t>(np.protocol), np.port, 16});
            continue;
          }
          for (Protocol proto : protos) {
            auto pnum = static_cast<uint8_t>(proto);
            if (p.port == 0) {
              specs.push_back(KeySpec{pnum, 0, 0});
            } else if (p.end_port > p.port) {
              for (auto [start, bits] : datapath::portRangeBlocks(p.port, p.end_port))
                specs.push_back(KeySpec{pnum, start, bits});
            } else {
              specs.push_back(KeySpec{pnum, p.port, 16});
            }
          }
        }
      }
    }
    std::vector<uint64_t> lows;
    lows.reserve(specs.size());
    for (const auto& s : specs) lows.push_back(detail::packLow(d, s));
    std::sort(lows.begin(), lows.end());
    lows.erase(std::unique(lows.begin(), lows.end()), lows.end());
    return lows;
  }

  static std::vector<std::pair<std::string, Protocol>> namedRefs(
      const PeerRule& pr, std::optional<size_t> only = std::nullopt) {
    std::vector<std::pair<std::string, Protocol>> out;
    for (size_t i = 0; i < pr.ports.size(); i++)
      if (only && *only != i) continue;
      else
        for (const auto& p : pr.ports[i].ports)
        if (!p.name.empty()) out.emplace_back(p.name, p.protocol);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  // The keys an egress named-port contribution gives identity `id`: the numbers its names have
  // on the pods of that identity.
  std::vector<uint64_t> namedLows(const Contribution& c, NumericIdentity id) const {
    std::vector<uint64_t> out;
    if (named_ports == nullptr) return out;
    const auto& known = cache.identities();
    auto it = known.find(id);
    if (it == known.end()) return out;
    for (const auto& [name, proto] : c.named)
      for (const auto& np : named_ports->lookup(it->second, name))
        if (np.port != 0 && np.protocol != Protocol::kAny &&
            (proto == Protocol::kAny || proto == np.protocol))
          out.push_back(
              detail::packLow(c.dir, KeySpec{static_cast<uint8_t>(np.protocol), np.port, 16}));
    return out;
  }

  struct Distilled {
    bool ingress = false;
    bool egress = false;
    bool named_egress = false;
    std::vector<Contribution> contributions;
  };

  Distilled distill(const Subject& subject) const {
    Distilled out;
    bool enforce_any = opts.mode != EnforcementMode::kNever;
    for (const auto& sr : rules) {
      if (!sr->rule.endpoint_selector.matches(subject.labels)) continue;
      if (!enforce_any) continue;
      out.ingress |= sr->rule.enforces(Direction::kIngress);
      out.egress |= sr->rule.enforces(Direction::kEgress);
      for (const auto& peer : sr->peers) {
        if (peer.selectors.empty()) continue;
        // A rule element with L7 rules contributes one port rule at a time, each with its own
        // L7 rules (or none); others all their ports at once.
        std::vector<std::optional<size_t>> parts;
        if (peer.hasL7())
          for (size_t i = 0; i < peer.source->ports.size(); i++) parts.emplace_back(i);
        else
          parts.emplace_back(std::nullopt);
        for (const auto& part : parts) {
          Contribution c;
          c.dir = static_cast<uint8_t>(peer.dir);
          c.deny = peer.deny;
          c.selectors = peer.selectors;
          if (part) c.l7 = peer.port_l7[*part];
          if (peer.named_ports) {
            c.named = namedRefs(*peer.source, part);
            if (c.named.empty()) continue;
            out.named_egress = true;
          } else {
            c.lows = specLows(*peer.source, peer.dir, subject, part);
            if (c.lows.empty()) continue;
          }
          out.contributions.push_back(std::move(c));
        }
      }
    }
    if (opts.mode == EnforcementMode::kAlways) out.ingress = out.egress = true;
    if (out.ingress && opts.allow_localhost) {
      Contribution c;
      c.dir = static_cast<uint8_t>(Direction::kIngress);
      c.host_only = true;
      c.lows.push_back(detail::packLow(c.dir, KeySpec{}));
      out.contributions.push_back(std::move(c));
    }
    // A direction nobody enforces allows everything: one wildcard entry.
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      if (d == Direction::kIngress ? out.ingress : out.egress) continue;
      Contribution c;
      c.dir = static_cast<uint8_t>(d);
      c.lows.push_back(detail::packLow(c.dir, KeySpec{}));
      out.contributions.push_back(std::move(c));
    }
    return out;
  }

  static bool wildcardOnly(const Contribution& c) { return !c.host_only && c.selectors.empty(); }

  std::vector<PackedEntry> fullState(const std::vector<Contribution>& contributions) const {
    detail::KeySet set;
    // Room for every key as if none repeated, but no more than a policy map can hold: many
    // rules usually repeat keys, and a huge empty table costs more than a few rehashes.
    size_t estimate = 0;
    for (const auto& c : contributions) {
      size_t idents = c.selectors.empty() ? 1 : 0;
      for (const CachedSelector* cs : c.selectors) idents += cs->selections().size();
      estimate += idents * (c.named.empty() ? c.lows.size() : c.named.size());
    }
    set.reserve(std::min<size_t>(estimate, CILIUM_POLICY_MAP_SIZE));
    static const std::vector<NumericIdentity> kHostOnly = {identity::kHost};
    static const std::vector<NumericIdentity> kAnyOnly = {identity::kUnknown};
    for (const auto& c : contributions) {
      uint8_t flags = c.flags();
      if (!c.named.empty()) {
        for (const CachedSelector* cs : c.selectors)
          for (NumericIdentity id : cs->selections())
            for (uint64_t low : namedLows(c, id)) set.insert(uint64_t{id} << 32 | low, flags);
        continue;
      }
      auto emit = [&](const std::vector<NumericIdentity>& idents) {
        for (NumericIdentity id : idents) {
          uint64_t base = uint64_t{id} << 32;
          for (uint64_t low : c.lows) set.insert(base | low, flags);
        }
      };
      if (c.host_only)
        emit(kHostOnly);
      else if (wildcardOnly(c))
        emit(kAnyOnly);
      for (const CachedSelector* cs : c.selectors) emit(cs->selections());
    }
    return detail::finalize(set.sorted());
  }

  // The entries of one identity, recomputed from the contributions.
  std::vector<PackedEntry> identityState(const std::vector<Contribution>& contributions,
                                         NumericIdentity id) const {
    std::vector<std::pair<uint64_t, uint8_t>> keys;
    uint64_t base = uint64_t{id} << 32;
    for (const auto& c : contributions) {
      bool selected = false;
      if (c.host_only)
        selected = id == identity::kHost;
      else if (wildcardOnly(c))
        selected = id == identity::kUnknown;
      for (const CachedSelector* cs : c.selectors) selected = selected || cs->selects(id);
      if (!selected) continue;
      uint8_t flags = c.flags();
      if (c.named.empty()) {
        for (uint64_t low : c.lows) keys.emplace_back(base | low, flags);
      } else {
        for (uint64_t low : namedLows(c, id)) keys.emplace_back(base | low, flags);
      }
    }
    std::sort(keys.begin(), keys.end());
    std::vector<std::pair<uint64_t, uint8_t>> merged;
    for (const auto& k : keys) {
      if (!merged.empty() && merged.back().first == k.first)
        merged.back().second |= k.second;
      else
        merged.push_back(k);
    }
    return detail::finalize(merged);
  }

  detail::RedirectPorts redirectPorts() const {
    return {opts.proxy_ports.http_ingress, opts.proxy_ports.http_egress,
            opts.proxy_ports.dns_egress};
  }

  EndpointPolicy toPolicy(uint64_t rev, const Distilled& d,
                          const std::vector<PackedEntry>& state) const {
    EndpointPolicy p;
    p.revision = rev;
    p.ingress_enforced = d.ingress;
    p.egress_enforced = d.egress;
    p.entries.reserve(state.size());
    auto ports = redirectPorts();
    for (const auto& e : state) {
      auto entry = detail::toPolicyEntry(e, ports);
      // The default allow of a direction nobody enforces: the datapath reports no verdicts
      // for what it lets in (bpf/abi/policy.h POLICY_F_UNENFORCED).
      bool enforced = entry.key.egress == POLICY_EGRESS ? d.egress : d.ingress;
      if (!enforced && !e.deny && entry.key.sec_label == 0 &&
          entry.key.prefixlen == POLICY_PREFIX_ANY_PROTO)
        entry.value.flags |= POLICY_F_UNENFORCED;
      p.entries.push_back(entry);
    }
    p.l7 = l7Of(d.contributions);
    return p;
  }

  // The identities a contribution stands for (identity 0 = any peer).
  std::vector<NumericIdentity> identitiesOf(const Contribution& c) const {
    std::vector<NumericIdentity> out;
    if (c.host_only) out.push_back(identity::kHost);
    if (wildcardOnly(c)) out.push_back(identity::kUnknown);
    for (const CachedSelector* cs : c.selectors)
      for (NumericIdentity id : cs->selections()) out.push_back(id);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  // The L7 policy of the ports some contribution redirects (L7PortRule in policy.h).
  L7Policy l7Of(const std::vector<Contribution>& contributions) const {
    L7Policy out;
    // (direction, spec) of every redirected key, and the specs of each contribution (named
    // ports resolve per identity).
    struct Spec {
      KeySpec spec;
      std::optional<NumericIdentity> only;  // named ports: the identity the number is for
    };
    auto specsOf = [&](const Contribution& c) {
      std::vector<Spec> v;
      if (c.named.empty()) {
        for (uint64_t low : c.lows) v.push_back({detail::unpackSpec(low), std::nullopt});
      } else {
        for (const CachedSelector* cs : c.selectors)
          for (NumericIdentity id : cs->selections())
            for (uint64_t low : namedLows(c, id)) v.push_back({detail::unpackSpec(low), id});
      }
      return v;
    };
    std::vector<std::pair<uint8_t, KeySpec>> redirected;
    for (const auto& c : contributions)
      if (!c.deny && c.l7)
        for (const auto& sp : specsOf(c)) redirected.emplace_back(c.dir, sp.spec);
    if (redirected.empty()) return out;
    for (const auto& c : contributions) {
      if (c.deny) continue;
      auto ids = identitiesOf(c);
      for (const auto& sp : specsOf(c)) {
        bool overlap = std::any_of(redirected.begin(), redirected.end(), [&](const auto& r) {
          return r.first == c.dir && detail::overlaps(r.second, sp.spec);
        });
        if (!overlap) continue;
        L7PortRule r;
        r.dir = static_cast<Direction>(c.dir);
        r.proto = sp.spec.proto;
        r.port = sp.spec.port;
        r.bits = sp.spec.bits;
        r.identities = sp.only ? std::vector<NumericIdentity>{*sp.only} : ids;
        r.allow_all = c.l7 == nullptr;
        if (c.l7) {
          r.http = c.l7->http;
          r.dns = c.l7->dns;
        }
        out.rules.push_back(std::move(r));
      }
    }
    return out;
  }

  Status checkSize(const Subject& s, size_t n) const {
    if (n > opts.max_entries)
      return makeError(ErrorCode::kResourceExhausted,
                       "policy of endpoint {} has {} map entries, more than the {} allowed",
                       s.endpoint_id, n, opts.max_entries);
    return okStatus();
  }

  void unregister(uint16_t endpoint_id) {
    auto it = attached.find(endpoint_id);
    if (it == attached.end()) return;
    for (const auto& c : it->second.contributions) {
      for (CachedSelector* cs : c.selectors) {
        auto u = selector_endpoints.find(cs);
        if (u != selector_endpoints.end()) {
          u->second.erase(endpoint_id);
          if (u->second.empty()) selector_endpoints.erase(u);
        }
        cache.remove(cs);
      }
    }
    attached.erase(it);
  }

  // --- Identity changes -------------------------------------------------------------------------

  std::vector<uint16_t> onIdentities(const std::vector<identity::IdentityChange>& changes) {
    std::lock_guard lock(mu);
    return selectionsChanged(cache.apply(changes));
  }

  std::vector<uint16_t> onAddresses(const std::vector<ipcache::Change>& changes) {
    std::lock_guard lock(mu);
    return selectionsChanged(cache.applyAddresses(changes));
  }

  // Recomputes the entries of each (endpoint, identity) a selection change touches; returns the
  // endpoints with changes to consume (mu held).
  std::vector<uint16_t> selectionsChanged(const std::vector<SelectorCache::Change>& sel_changes) {
    std::unordered_map<uint16_t, std::set<NumericIdentity>> touched;
    for (const auto& c : sel_changes) {
      auto it = selector_endpoints.find(c.selector);
      if (it == selector_endpoints.end()) continue;
      for (uint16_t ep : it->second) touched[ep].insert(c.id);
    }
    std::vector<uint16_t> changed_eps;
    for (const auto& [ep, idents] : touched) {
      Attached& a = attached.at(ep);
      bool changed = false;
      for (NumericIdentity id : idents) {
        auto now = identityState(a.contributions, id);
        auto cur = a.state.find(id);
        const std::vector<PackedEntry> empty;
        const auto& before = cur == a.state.end() ? empty : cur->second;
        if (now == before) continue;
        a.pending_old.try_emplace(id, before);
        if (now.empty())
          a.state.erase(id);
        else
          a.state[id] = std::move(now);
        changed = true;
      }
      if (changed) changed_eps.push_back(ep);
    }
    std::sort(changed_eps.begin(), changed_eps.end());
    return changed_eps;
  }

  void notify(const std::vector<uint16_t>& eps) {
    if (eps.empty()) return;
    std::lock_guard lock(listener_mu);
    if (listener) listener(eps);
  }
};

Engine::Engine(identity::Allocator& ids, EngineOptions options, CidrIdentityProvider* cidrs,
               const NamedPortProvider* named_ports, ipcache::IpCache* addresses)
    : impl_(std::make_unique<Impl>(ids, options, cidrs, named_ports, addresses)) {
  // A redirect without its proxy port would be a plain L4 allow: a caller's bug.
  if (options.l7 == L7Mode::kRedirect &&
      (options.proxy_ports.http_ingress == 0 || options.proxy_ports.http_egress == 0 ||
       options.proxy_ports.dns_egress == 0))
    std::abort();
  Impl* impl = impl_.get();
  impl_->subscription = ids.subscribe([impl](const std::vector<identity::IdentityChange>& changes) {
    impl->notify(impl->onIdentities(changes));
  });
  if (addresses != nullptr)
    impl_->address_subscription =
        addresses->subscribe([impl](const std::vector<ipcache::Change>& changes) {
          impl->notify(impl->onAddresses(changes));
        });
}

Engine::~Engine() {
  if (impl_->addresses != nullptr) impl_->addresses->unsubscribe(impl_->address_subscription);
  impl_->ids.unsubscribe(impl_->subscription);
}

// --- Repository -------------------------------------------------------------------------------

Result<ImportResult> Engine::import(std::string_view text, const ImportOptions& options) {
  auto objects = decodePolicies(text);
  if (!objects.ok()) {
    impl_->outcome(false);
    return std::move(objects).error();
  }
  return importObjects(std::move(*objects), options);
}

Result<ImportResult> Engine::importRules(std::string_view json_array,
                                         const ImportOptions& options) {
  auto rules = decodeRules(json_array);
  if (!rules.ok()) {
    impl_->outcome(false);
    return std::move(rules).error();
  }
  PolicyObject po;
  po.rules = std::move(*rules);
  std::vector<PolicyObject> objects;
  objects.push_back(std::move(po));
  return importObjects(std::move(objects), options);
}

Result<ImportResult> Engine::importObjects(std::vector<PolicyObject> objects,
                                           const ImportOptions& options) {
  ImportResult result;
  std::vector<IpPrefix> new_prefixes;
  for (auto& o : objects) {
    for (auto& r : o.rules) {
      if (r.hasL7() && impl_->opts.l7 == L7Mode::kReject) {
        impl_->outcome(false);
        return makeError(ErrorCode::kUnimplemented,
                         "{}: L7 rules are not supported (the L7 proxy is not available)",
                         o.kind.empty() ? std::string("rule")
                                        : fmt::format("{} {}{}{}", o.kind, o.namespace_name,
                                                      o.namespace_name.empty() ? "" : "/", o.name));
      }
      r.labels.merge(options.extra_labels);
      auto p = r.prefixes();
      new_prefixes.insert(new_prefixes.end(), p.begin(), p.end());
    }
    result.warnings.insert(result.warnings.end(), o.warnings.begin(), o.warnings.end());
  }
  // CIDR identities exist before the rules that select them: no window in which an address of a
  // new prefix still resolves to world.
  if (impl_->cidrs != nullptr && !new_prefixes.empty()) {
    auto st = impl_->cidrs->acquire(new_prefixes);
    if (!st.ok()) {
      impl_->outcome(false);
      return st.error().withContext("policy import: CIDR identities");
    }
  }
  std::vector<IpPrefix> released;
  {
    std::lock_guard lock(impl_->mu);
    auto& rules = impl_->rules;
    std::vector<std::unique_ptr<StoredRule>> removed;
    auto take = [&](auto pred) {
      for (auto it = rules.begin(); it != rules.end();) {
        if ((*it)->owner == options.owner && pred((*it)->rule)) {
          removed.push_back(std::move(*it));
          it = rules.erase(it);
        } else {
          ++it;
        }
      }
    };
    for (const auto& o : objects) {
      auto key = o.objectLabels();
      if (!key.empty()) take([&](const Rule& r) { return r.labels.contains(key); });
      if (options.replace)
        for (const auto& nr : o.rules) take([&](const Rule& r) { return r.labels == nr.labels; });
    }
    if (!options.replace_with_labels.empty())
      take([&](const Rule& r) { return r.labels.contains(options.replace_with_labels); });

    std::vector<const Rule*> changed;
    for (auto& sr : removed) {
      impl_->uncompile(*sr);
      auto p = sr->rule.prefixes();
      released.insert(released.end(), p.begin(), p.end());
      changed.push_back(&sr->rule);
    }
    for (auto& o : objects) {
      for (auto& r : o.rules) {
        rules.push_back(impl_->compile(std::move(r), options.owner));
        changed.push_back(&rules.back()->rule);
        result.added++;
      }
    }
    result.deleted = removed.size();
    result.revision = ++impl_->revision;
    result.affected_endpoints = impl_->endpointsSelectedBy(changed);
  }
  if (impl_->cidrs != nullptr && !released.empty()) impl_->cidrs->release(released);
  for (const auto& w : result.warnings) log()->warn("{}", w);
  log()->info("policy imported revision={} added={} replaced={} affected_endpoints={}",
              result.revision, result.added, result.deleted, result.affected_endpoints.size());
  impl_->outcome(true);
  return result;
}

Result<DeleteResult> Engine::deleteByLabels(const labels::Labels& lbls,
                                            std::optional<Owner> owner) {
  DeleteResult result;
  std::vector<IpPrefix> released;
  {
    std::lock_guard lock(impl_->mu);
    auto& rules = impl_->rules;
    std::vector<std::unique_ptr<StoredRule>> removed;
    size_t others = 0;  // matching rules of another owner, left alone
    for (auto it = rules.begin(); it != rules.end();) {
      if (!(*it)->rule.labels.contains(lbls)) {
        ++it;
      } else if (owner && (*it)->owner != *owner) {
        others++;
        ++it;
      } else {
        removed.push_back(std::move(*it));
        it = rules.erase(it);
      }
    }
    if (removed.empty()) impl_->outcome(false);  // listeners never take impl_->mu
    if (removed.empty() && others != 0)
      return makeError(ErrorCode::kNotFound,
                       "no {} policy rule has labels [{}]; {} rule(s) with them are owned by the {} "
                       "source and are removed there",
                       ownerName(*owner), lbls.toString(), others,
                       ownerName(*owner == Owner::kApi ? Owner::kCluster : Owner::kApi));
    if (removed.empty())
      return makeError(ErrorCode::kNotFound, "no policy rule has labels [{}]", lbls.toString());
    std::vector<const Rule*> changed;
    for (auto& sr : removed) {
      impl_->uncompile(*sr);
      auto p = sr->rule.prefixes();
      released.insert(released.end(), p.begin(), p.end());
      changed.push_back(&sr->rule);
    }
    result.deleted = removed.size();
    result.revision = ++impl_->revision;
    result.affected_endpoints = impl_->endpointsSelectedBy(changed);
  }
  if (impl_->cidrs != nullptr && !released.empty()) impl_->cidrs->release(released);
  log()->info("policy deleted revision={} rules={} labels=[{}]", result.revision, result.deleted,
              lbls.toString());
  impl_->outcome(true);
  return result;
}

Result<DeleteResult> Engine::deleteObject(std::string_view kind, std::string_view namespace_name,
                                          std::string_view name, std::optional<Owner> owner) {
  PolicyObject o;
  o.kind = std::string(kind);
  o.namespace_name = kind == kKindCcnp ? "" : std::string(namespace_name);
  o.name = std::string(name);
  return deleteByLabels(o.objectLabels(), owner);
}

std::vector<ObjectRef> Engine::objects(Owner owner) const {
  std::lock_guard lock(impl_->mu);
  std::set<ObjectRef> out;
  for (const auto& sr : impl_->rules) {
    if (sr->owner != owner) continue;
    if (auto ref = objectOf(sr->rule.labels)) out.insert(std::move(*ref));
  }
  return {out.begin(), out.end()};
}

nlohmann::json Engine::stateJson() const {
  std::lock_guard lock(impl_->mu);
  auto rules = nlohmann::json::array();
  for (const auto& sr : impl_->rules)
    rules.push_back({{"owner", ownerName(sr->owner)}, {"rule", sr->rule.toJson()}});
  return {{"rules", std::move(rules)}};
}

Result<ImportResult> Engine::restoreState(const nlohmann::json& state) {
  // Per owner, in one revision: both imports happen under the caller's serialisation, and an
  // owner's import never replaces the other's rules.
  std::map<Owner, nlohmann::json> by_owner;
  auto add = [&](Owner o, const nlohmann::json& rule) {
    auto& arr = by_owner[o];
    if (!arr.is_array()) arr = nlohmann::json::array();
    arr.push_back(rule);
  };
  if (state.is_array()) {
    // The state of an older agent: a plain rule array without owners.
    for (const auto& r : state) {
      bool derived = false;
      if (r.is_object() && r.contains("labels")) {
        auto lbls = labels::Labels::fromJson(r["labels"], "labels");
        derived = lbls.ok() && objectOf(*lbls).has_value();
      }
      add(derived ? Owner::kCluster : Owner::kApi, r);
    }
  } else if (state.is_object() && state.contains("rules") && state["rules"].is_array()) {
    const auto& rules = state["rules"];
    for (size_t i = 0; i < rules.size(); i++) {
      const auto& e = rules[i];
      if (!e.is_object() || !e.contains("rule") || !e.contains("owner") || !e["owner"].is_string())
        return makeError(ErrorCode::kInvalidArgument, "rules[{}]: needs owner and rule", i);
      auto owner = e["owner"].get<std::string>();
      if (owner == ownerName(Owner::kApi))
        add(Owner::kApi, e["rule"]);
      else if (owner == ownerName(Owner::kCluster))
        add(Owner::kCluster, e["rule"]);
      else
        return makeError(ErrorCode::kInvalidArgument, "rules[{}].owner: unknown owner \"{}\"", i,
                         owner);
    }
  } else {
    return Error(ErrorCode::kInvalidArgument, "not a policy state: {\"rules\": [...]}");
  }
  // Decode everything before anything is imported: all or nothing.
  std::map<Owner, std::vector<Rule>> decoded;
  for (const auto& [owner, arr] : by_owner) {
    CILIUM_ASSIGN_OR_RETURN(decoded[owner], decodeRules(arr, "rules"));
  }
  ImportResult total;
  for (auto& [owner, rules] : decoded) {
    PolicyObject po;
    po.rules = std::move(rules);
    std::vector<PolicyObject> objects;
    objects.push_back(std::move(po));
    ImportOptions opts;
    opts.owner = owner;
    CILIUM_ASSIGN_OR_RETURN(auto r, importObjects(std::move(objects), opts));
    total.revision = r.revision;
    total.added += r.added;
    total.affected_endpoints.insert(total.affected_endpoints.end(), r.affected_endpoints.begin(),
                                    r.affected_endpoints.end());
    total.warnings.insert(total.warnings.end(), r.warnings.begin(), r.warnings.end());
  }
  if (decoded.empty()) total.revision = revision();
  std::sort(total.affected_endpoints.begin(), total.affected_endpoints.end());
  total.affected_endpoints.erase(
      std::unique(total.affected_endpoints.begin(), total.affected_endpoints.end()),
      total.affected_endpoints.end());
  return total;
}

uint64_t Engine::revision() const {
  std::lock_guard lock(impl_->mu);
  return impl_->revision;
}

size_t Engine::ruleCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->rules.size();
}

nlohmann::json Engine::rulesJson(const labels::Labels& filter) const {
  std::lock_guard lock(impl_->mu);
  auto arr = nlohmann::json::array();
  for (const auto& sr : impl_->rules)
    if (sr->rule.labels.contains(filter)) arr.push_back(sr->rule.toJson());
  return arr;
}

std::vector<SelectorInfo> Engine::selectors() const {
  std::lock_guard lock(impl_->mu);
  return impl_->cache.list();
}

std::vector<std::string> Engine::fqdnSelectors() const {
  std::lock_guard lock(impl_->mu);
  std::set<std::string> out;
  for (const auto& sr : impl_->rules)
    for (const auto& pr : sr->rule.egress)
      for (const auto& f : pr.fqdns) out.insert(f.pattern());
  return {out.begin(), out.end()};
}

void Engine::setFqdnListener(std::function<void()> listener) {
  std::lock_guard lock(impl_->listener_mu);
  impl_->fqdn_listener = std::move(listener);
}

std::vector<IpPrefix> Engine::cidrPrefixes() const {
  std::lock_guard lock(impl_->mu);
  std::set<IpPrefix> out;
  for (const auto& sr : impl_->rules)
    for (const auto& p : sr->rule.prefixes()) out.insert(p);
  return {out.begin(), out.end()};
}

// --- Resolution -------------------------------------------------------------------------------

Result<EndpointPolicy> Engine::resolve(const Subject& subject) const {
  std::lock_guard lock(impl_->mu);
  auto d = impl_->distill(subject);
  auto state = impl_->fullState(d.contributions);
  CILIUM_RETURN_IF_ERROR(impl_->checkSize(subject, state.size()));
  return impl_->toPolicy(impl_->revision, d, state);
}

Result<EndpointPolicy> Engine::attach(const Subject& subject) {
  std::lock_guard lock(impl_->mu);
  auto d = impl_->distill(subject);
  auto state = impl_->fullState(d.contributions);
  CILIUM_RETURN_IF_ERROR(impl_->checkSize(subject, state.size()));
  EndpointPolicy policy = impl_->toPolicy(impl_->revision, d, state);

  impl_->unregister(subject.endpoint_id);
  Attached& a = impl_->attached[subject.endpoint_id];
  a.subject = subject;
  a.uses_egress_named_ports = d.named_egress;
  a.has_l7 = !policy.l7.empty();
  a.contributions = std::move(d.contributions);
  for (const auto& c : a.contributions) {
    for (CachedSelector* cs : c.selectors) {
      impl_->cache.ref(cs);
      impl_->selector_endpoints[cs].insert(subject.endpoint_id);
    }
  }
  for (size_t i = 0; i < state.size();) {
    uint32_t id = detail::packedIdentity(state[i].key);
    size_t end = i;
    while (end < state.size() && detail::packedIdentity(state[end].key) == id) end++;
    a.state.emplace(id, std::vector<PackedEntry>(state.begin() + static_cast<std::ptrdiff_t>(i),
                                                 state.begin() + static_cast<std::ptrdiff_t>(end)));
    i = end;
  }
  return policy;
}

void Engine::detach(uint16_t endpoint_id) {
  std::lock_guard lock(impl_->mu);
  impl_->unregister(endpoint_id);
}

std::vector<uint16_t> Engine::attachedEndpoints() const {
  std::lock_guard lock(impl_->mu);
  std::vector<uint16_t> out;
  for (const auto& [id, a] : impl_->attached) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

Result<MapDelta> Engine::consumeChanges(uint16_t endpoint_id) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->attached.find(endpoint_id);
  if (it == impl_->attached.end())
    return makeError(ErrorCode::kNotFound, "endpoint {} has no attached policy", endpoint_id);
  Attached& a = it->second;
  std::vector<PackedEntry> up_deny, up_allow, del_allow, del_deny;
  const std::vector<PackedEntry> empty;
  for (const auto& [id, before] : a.pending_old) {
    auto cur = a.state.find(id);
    const auto& now = cur == a.state.end() ? empty : cur->second;
    // Both sorted by key: a merge finds what appeared, changed or went away.
    size_t i = 0, k = 0;
    while (i < before.size() || k < now.size()) {
      if (k == now.size() || (i < before.size() && before[i].key < now[k].key)) {
        (before[i].deny ? del_deny : del_allow).push_back(before[i]);
        i++;
      } else if (i == before.size() || now[k].key < before[i].key) {
        (now[k].deny ? up_deny : up_allow).push_back(now[k]);
        k++;
      } else {
        if (before[i].deny != now[k].deny || before[i].redirect != now[k].redirect)
          (now[k].deny ? up_deny : up_allow).push_back(now[k]);
        i++;
        k++;
      }
    }
  }
  bool changed = !a.pending_old.empty();
  a.pending_old.clear();
  MapDelta delta;
  auto ports = impl_->redirectPorts();
  for (const auto* list : {&up_deny, &up_allow})
    for (const auto& e : *list) delta.upserts.push_back(detail::toPolicyEntry(e, ports));
  if (a.has_l7 && changed) delta.l7 = impl_->l7Of(a.contributions);
  for (const auto* list : {&del_allow, &del_deny})
    for (const auto& e : *list) delta.deletes.push_back(detail::toPolicyKey(e.key));
  return delta;
}

void Engine::setOutcomeListener(std::function<void(bool ok)> listener) {
  std::lock_guard lock(impl_->listener_mu);
  impl_->outcome_listener = std::move(listener);
}

void Engine::setChangeListener(std::function<void(const std::vector<uint16_t>&)> listener) {
  std::lock_guard lock(impl_->listener_mu);
  impl_->listener = std::move(listener);
}

std::vector<uint16_t> Engine::namedPortsChanged() const {
  std::lock_guard lock(impl_->mu);
  std::vector<uint16_t> out;
  for (const auto& [id, a] : impl_->attached)
    if (a.uses_egress_named_ports) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cilium::policy
