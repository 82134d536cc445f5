// The selector cache: selections computed once per selector, updated per identity change.
#include "agent/policy/selector_cache.h"

#include <algorithm>

#include "agent/identity/identity.h"

namespace cilium::policy {

namespace {

bool hasReserved(const labels::Labels& l, std::string_view name) {
  return l.has(labels::Source::kReserved, name);
}

bool isWorld(const labels::Labels& l) {
  return hasReserved(l, "world") || hasReserved(l, "world-ipv4") || hasReserved(l, "world-ipv6");
}

// An identity of endpoints (pods): cluster scope, no reserved, CIDR or FQDN labels.
bool isPodIdentity(NumericIdentity id, const labels::Labels& l) {
  return id >= identity::kMinCluster && !identity::isLocal(id) &&
         !l.hasSource(labels::Source::kReserved) && !l.hasSource(labels::Source::kCidr) &&
         !l.hasSource(labels::Source::kFqdn);
}

}  // namespace

PeerSelector PeerSelector::ofLabels(labels::LabelSelector s) {
  PeerSelector p;
  if (s.empty()) return p;  // selects everything: the wildcard
  p.kind = Kind::kLabels;
  p.labels = std::move(s);
  return p;
}

PeerSelector PeerSelector::cluster() {
  PeerSelector p;
  p.kind = Kind::kCluster;
  return p;
}

PeerSelector PeerSelector::ofCidr(IpPrefix cidr, std::vector<IpPrefix> except) {
  PeerSelector p;
  p.kind = Kind::kCidr;
  p.cidr = cidr;
  std::sort(except.begin(), except.end());
  except.erase(std::unique(except.begin(), except.end()), except.end());
  p.except = std::move(except);
  return p;
}

PeerSelector PeerSelector::ofIpBlock(IpPrefix cidr, std::vector<IpPrefix> except) {
  PeerSelector p = ofCidr(cidr, std::move(except));
  p.pods = true;
  return p;
}

PeerSelector PeerSelector::ofFqdn(std::string pattern) {
  PeerSelector p;
  p.kind = Kind::kFqdn;
  p.fqdn = std::move(pattern);
  return p;
}

bool PeerSelector::selects(NumericIdentity id, const labels::Labels& l,
                           const std::set<IpPrefix>* addresses) const {
  switch (kind) {
    case Kind::kWildcard: return true;
    case Kind::kLabels: return labels.matches(l);
    case Kind::kFqdn: return l.has(labels::Source::kFqdn, fqdn);
    case Kind::kCluster:
      return id != identity::kUnknown && !isWorld(l) && !l.hasSource(labels::Source::kCidr) &&
             !l.hasSource(labels::Source::kFqdn);
    case Kind::kCidr: {
      if (cidr.len() == 0 && l.size() == 1) {
        // The whole address space also holds what the ipcache does not know: world.
        if (hasReserved(l, "world")) return true;
        if (hasReserved(l, cidr.family() == IpFamily::kV4 ? "world-ipv4" : "world-ipv6"))
          return true;
      }
      if (auto p = identity::cidrOfLabels(l)) {
        if (!cidr.contains(*p)) return false;
        for (const auto& e : except)
          if (e.contains(*p)) return false;
        return true;
      }
      // A pod identity, only when that is exact: every address the datapath maps to it lies in
      // the block and outside every except (policy keys are per identity, not per address).
      if (!pods || addresses == nullptr || addresses->empty() || !isPodIdentity(id, l))
        return false;
      for (const auto& a : *addresses) {
        if (!cidr.contains(a)) return false;
        for (const auto& e : except)
          if (e.contains(a) || a.contains(e)) return false;
      }
      return true;
    }
  }
  return false;
}

std::string PeerSelector::key() const {
  switch (kind) {
    case Kind::kWildcard: return "{}";
    case Kind::kLabels: return labels.toString();
    case Kind::kCluster: return "entity:cluster";
    case Kind::kFqdn: return "fqdn:" + fqdn;
    case Kind::kCidr: {
      std::string k = (pods ? "ipblock:" : "cidr:") + cidr.toString();
      for (size_t i = 0; i < except.size(); i++) {
        k += i == 0 ? " except " : ",";
        k += except[i].toString();
      }
      return k;
    }
  }
  return "{}";
}

bool CachedSelector::selects(NumericIdentity id) const {
  return std::binary_search(selections_.begin(), selections_.end(), id);
}

CachedSelector* SelectorCache::add(const PeerSelector& spec) {
  std::string key = spec.key();
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    auto sel = std::make_unique<CachedSelector>();
    sel->key_ = key;
    sel->spec_ = spec;
    if (spec.kind == PeerSelector::Kind::kWildcard) {
      sel->selections_.push_back(identity::kUnknown);  // identity 0 = any peer
    } else {
      for (const auto& [id, l] : identities_)
        if (spec.selects(id, l, addressesOf(id))) sel->selections_.push_back(id);
      std::sort(sel->selections_.begin(), sel->selections_.end());
    }
    it = by_key_.emplace(std::move(key), std::move(sel)).first;
  }
  it->second->users_++;
  return it->second.get();
}

void SelectorCache::ref(CachedSelector* sel) { sel->users_++; }

void SelectorCache::remove(CachedSelector* sel) {
  if (--sel->users_ > 0) return;
  by_key_.erase(sel->key_);
}

std::vector<SelectorCache::Change> SelectorCache::apply(
    const std::vector<identity::IdentityChange>& changes) {
  std::vector<Change> out;
  auto drop = [&](NumericIdentity id) {
    for (auto& [key, sel] : by_key_) {
      auto& v = sel->selections_;
      auto it = std::lower_bound(v.begin(), v.end(), id);
      if (it == v.end() || *it != id || sel->isWildcard()) continue;
      v.erase(it);
      out.push_back({sel.get(), id, false});
    }
  };
  for (const auto& c : changes) {
    NumericIdentity id = c.identity.id;
    if (id == identity::kUnknown) continue;
    if (c.kind == identity::IdentityChange::Kind::kRemoved) {
      if (identities_.erase(id) == 0) continue;
      drop(id);
      continue;
    }
    auto [it, inserted] = identities_.try_emplace(id, c.identity.labels);
    if (!inserted) {
      if (it->second == c.identity.labels) continue;
      // A number reused for other labels: what selected the old labels must let go first.
      drop(id);
      it->second = c.identity.labels;
    }
    const std::set<IpPrefix>* addresses = addressesOf(id);
    for (auto& [key, sel] : by_key_) {
      if (sel->isWildcard() || !sel->spec_.selects(id, it->second, addresses)) continue;
      auto& v = sel->selections_;
      v.insert(std::lower_bound(v.begin(), v.end(), id), id);
      out.push_back({sel.get(), id, true});
    }
  }
  return out;
}

std::vector<SelectorCache::Change> SelectorCache::applyAddresses(
    const std::vector<ipcache::Change>& changes) {
  std::set<NumericIdentity> touched;
  for (const auto& c : changes) {
    if (c.before != identity::kUnknown) {
      auto it = addresses_.find(c.before);
      if (it != addresses_.end()) {
        it->second.erase(c.prefix);
        if (it->second.empty()) addresses_.erase(it);
      }
      touched.insert(c.before);
    }
    if (c.after != identity::kUnknown) {
      addresses_[c.after].insert(c.prefix);
      touched.insert(c.after);
    }
  }
  std::vector<Change> out;
  for (NumericIdentity id : touched) {
    auto known = identities_.find(id);
    if (known == identities_.end()) continue;  // selected once the identity itself appears
    const std::set<IpPrefix>* addresses = addressesOf(id);
    for (auto& [key, sel] : by_key_) {
      if (!sel->spec_.usesAddresses()) continue;
      bool now = sel->spec_.selects(id, known->second, addresses);
      auto& v = sel->selections_;
      auto pos = std::lower_bound(v.begin(), v.end(), id);
      bool was = pos != v.end() && *pos == id;
      if (now == was) continue;
      if (now)
        v.insert(pos, id);
      else
        v.erase(pos);
      out.push_back({sel.get(), id, now});
    }
  }
  return out;
}

const std::set<IpPrefix>* SelectorCache::addressesOf(NumericIdentity id) const {
  auto it = addresses_.find(id);
  return it == addresses_.end() ? nullptr : &it->second;
}

std::vector<SelectorInfo> SelectorCache::list() const {
  std::vector<SelectorInfo> out;
  out.reserve(by_key_.size());
  for (const auto& [key, sel] : by_key_) out.push_back({key, sel->selections_, sel->users_});
  std::sort(out.begin(), out.end(),
            [](const SelectorInfo& a, const SelectorInfo& b) { return a.selector < b.selector; });
  return out;
}

}  // namespace cilium::policy
