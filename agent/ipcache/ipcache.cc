// The ipcache: per-prefix source precedence and write-through to the kernel map.
#include "agent/ipcache/ipcache.h"

#include <cstring>
#include <set>

#include "agent/common/log.h"

namespace cilium::ipcache {

namespace {

auto& log() {
  static auto l = cilium::logger("ipcache");
  return l;
}

bool sameValue(const remote_endpoint_info& a, const remote_endpoint_info& b) {
  return a.sec_identity == b.sec_identity &&
         std::memcmp(&a.tunnel_endpoint, &b.tunnel_endpoint, sizeof(a.tunnel_endpoint)) == 0 &&
         a.node_id == b.node_id && a.key == b.key && a.flags == b.flags;
}

}  // namespace

std::string_view sourceName(Source s) {
  switch (s) {
    case Source::kRestored: return "restored";
    case Source::kGenerated: return "generated";
    case Source::kFqdn: return "fqdn";
    case Source::kLocalApi: return "local-api";
    case Source::kKubernetes: return "k8s";
    case Source::kCustomResource: return "custom-resource";
    case Source::kKvstore: return "kvstore";
    case Source::kLocal: return "local";
  }
  return "unknown";
}

std::string formatEntry(const Entry& e) {
  std::string tunnel = e.info.tunnel_endpoint
                           ? e.info.tunnel_endpoint->toString()
                           : (e.prefix.family() == IpFamily::kV4 ? "0.0.0.0" : "::");
  return fmt::format("{:<20} identity={} encryptkey={} tunnelendpoint={} flags={}",
                     e.prefix.toString(), e.info.identity, e.info.encrypt_key, tunnel,
                     e.info.tunnel_endpoint ? "hastunnel" : "<none>");
}

ipcache_key kernelKey(const IpPrefix& prefix) { return datapath::ipcacheKey(prefix); }

remote_endpoint_info kernelValue(const Info& info) {
  remote_endpoint_info v{};
  v.sec_identity = info.identity;
  if (info.tunnel_endpoint) {
    std::memcpy(&v.tunnel_endpoint, info.tunnel_endpoint->bytes().data(), 16);
    v.flags |= IPCACHE_F_HAS_TUNNEL_EP;
    // The endpoint's own family, not the key's: IPv6 pod CIDRs tunnel over the IPv4 underlay.
    if (!info.tunnel_endpoint->isV4()) v.flags |= IPCACHE_F_TUNNEL_EP_IPV6;
  }
  v.key = info.encrypt_key;
  v.node_id = info.node_id;
  return v;
}

IpPrefix prefixOfKey(const ipcache_key& key) {
  uint8_t len = static_cast<uint8_t>(key.prefixlen - IPCACHE_PREFIX_BASE);
  if (key.family == ENDPOINT_KEY_IPV6) {
    return IpPrefix(IpAddr::fromBytes(IpFamily::kV6, reinterpret_cast<const uint8_t*>(key.ip.ip6)),
                    len);
  }
  return IpPrefix(IpAddr::fromNetworkOrder(key.ip.ip4), len);
}

namespace {

Info infoOfValue(const remote_endpoint_info& v) {
  Info info;
  info.identity = v.sec_identity;
  info.tunnel_endpoint = datapath::ipcacheTunnelEndpoint(v);
  info.encrypt_key = v.key;
  info.node_id = v.node_id;
  return info;
}

}  // namespace

IpCache::IpCache(datapath::IpcacheMap* map, datapath::RuntimeConfigMap* runtime)
    : map_(map), runtime_(runtime) {}

Status IpCache::writeKernel(const IpPrefix& prefix, const std::optional<Info>& info) {
  if (map_ == nullptr) return okStatus();
  auto key = kernelKey(prefix);
  if (!info) {
    auto removed = map_->remove(key);
    if (!removed.ok()) return removed.error();
    return okStatus();
  }
  return map_->update(key, kernelValue(*info));
}

Status IpCache::bumpRevision() {
  if (runtime_ == nullptr) return okStatus();
  return datapath::bumpPolicyRevision(*runtime_);
}

Status IpCache::upsert(const IpPrefix& prefix, const Info& info, Source source) {
  if (info.identity == identity::kUnknown)
    return makeError(ErrorCode::kInvalidArgument, "ipcache {}: identity 0 is not an identity",
                     prefix.toString());
  Status result = [&]() -> Status {
    std::lock_guard lock(mu_);
    auto [it, created] = entries_.try_emplace(prefix);
    Holders& h = it->second;
    std::optional<Info> old_winner;
    if (!created) old_winner = h.winner().second;
    std::optional<Info> previous;
    if (auto p = h.by_source.find(source); p != h.by_source.end()) previous = p->second;
    h.by_source[source] = info;
    const Info& winner = h.winner().second;
    if (old_winner && *old_winner == winner) return okStatus();
    if (auto st = writeKernel(prefix, winner); !st.ok()) {
      if (previous) {
        h.by_source[source] = *previous;
      } else {
        h.by_source.erase(source);
        if (h.by_source.empty()) entries_.erase(it);
      }
      return st.error().withContext(fmt::format("ipcache upsert {}", prefix.toString()));
    }
    log()->debug("upsert prefix={} identity={} source={}", prefix.toString(), winner.identity,
                 sourceName(h.winner().first));
    identity::NumericIdentity before = old_winner ? old_winner->identity : identity::kUnknown;
    if (before == winner.identity) return okStatus();
    queueLocked(prefix, before, winner.identity);
    return bumpRevision();
  }();
  deliver();
  return result;
}

Status IpCache::remove(const IpPrefix& prefix, Source source) {
  Status result = [&]() -> Status {
    std::lock_guard lock(mu_);
    auto it = entries_.find(prefix);
    if (it == entries_.end()) return okStatus();
    Holders& h = it->second;
    auto s = h.by_source.find(source);
    if (s == h.by_source.end()) return okStatus();
    Info old_winner = h.winner().second;
    Info removed = s->second;
    h.by_source.erase(s);
    std::optional<Info> new_winner;
    if (!h.by_source.empty()) new_winner = h.winner().second;
    if (new_winner && *new_winner == old_winner) return okStatus();
    if (auto st = writeKernel(prefix, new_winner); !st.ok()) {
      h.by_source[source] = removed;
      return st.error().withContext(fmt::format("ipcache remove {}", prefix.toString()));
    }
    if (!new_winner) entries_.erase(it);
    log()->debug("remove prefix={} source={}", prefix.toString(), sourceName(source));
    identity::NumericIdentity after = new_winner ? new_winner->identity : identity::kUnknown;
    if (after == old_winner.identity) return okStatus();
    queueLocked(prefix, old_winner.identity, after);
    return bumpRevision();
  }();
  deliver();
  return result;
}

Status IpCache::removeAll(Source source) {
  std::vector<IpPrefix> held;
  {
    std::lock_guard lock(mu_);
    for (const auto& [p, h] : entries_)
      if (h.by_source.count(source)) held.push_back(p);
  }
  for (const auto& p : held) CILIUM_RETURN_IF_ERROR(remove(p, source));
  return okStatus();
}

std::optional<Entry> IpCache::get(const IpPrefix& prefix) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(prefix);
  if (it == entries_.end()) return std::nullopt;
  const auto& [src, info] = it->second.winner();
  return Entry{prefix, info, src};
}

std::optional<Entry> IpCache::lookup(const IpAddr& addr) const {
  std::lock_guard lock(mu_);
  for (int len = addr.bits(); len >= 0; len--) {
    IpPrefix p(addr, static_cast<uint8_t>(len));
    auto it = entries_.find(p);
    if (it == entries_.end()) continue;
    const auto& [src, info] = it->second.winner();
    return Entry{p, info, src};
  }
  return std::nullopt;
}

std::vector<Entry> IpCache::list() const {
  std::lock_guard lock(mu_);
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (const auto& [p, h] : entries_) {
    const auto& [src, info] = h.winner();
    out.push_back({p, info, src});
  }
  return out;
}

Status IpCache::restoreFromKernel() {
  if (map_ == nullptr) return okStatus();
  Status st = restoreLocked();
  deliver();
  return st;
}

Status IpCache::restoreLocked() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  CILIUM_RETURN_IF_ERROR(map_->forEach([&](const ipcache_key& k, const remote_endpoint_info& v) {
    if (v.sec_identity == identity::kUnknown) return true;
    IpPrefix p = prefixOfKey(k);
    auto [it, created] = entries_.try_emplace(p);
    it->second.by_source.emplace(Source::kRestored, infoOfValue(v));
    if (created) queueLocked(p, identity::kUnknown, v.sec_identity);
    n++;
    return true;
  }));
  log()->info("restored ipcache entries count={}", n);
  return okStatus();
}

Status IpCache::syncToKernel() {
  if (map_ == nullptr) return okStatus();
  std::lock_guard lock(mu_);
  bool changed = false;
  std::vector<ipcache_key> stale;
  CILIUM_RETURN_IF_ERROR(map_->forEach([&](const ipcache_key& k, const remote_endpoint_info&) {
    if (!entries_.count(prefixOfKey(k))) stale.push_back(k);
    return true;
  }));
  for (const auto& k : stale) {
    auto r = map_->remove(k);
    if (!r.ok()) return r.error();
    changed = true;
  }
  for (const auto& [p, h] : entries_) {
    auto key = kernelKey(p);
    auto want = kernelValue(h.winner().second);
    CILIUM_ASSIGN_OR_RETURN(auto have, map_->lookup(key));
    if (have && sameValue(*have, want)) continue;
    CILIUM_RETURN_IF_ERROR(map_->update(key, want));
    changed = true;
  }
  if (changed) return bumpRevision();
  return okStatus();
}

void IpCache::queueLocked(const IpPrefix& prefix, identity::NumericIdentity before,
                          identity::NumericIdentity after) {
  pending_.push_back(Change{prefix, before, after});
}

void IpCache::deliver() {
  std::lock_guard notify(notify_mu_);
  for (;;) {
    std::vector<Change> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(pending_);
    }
    if (batch.empty()) return;
    for (auto& [id, obs] : observers_) obs(batch);
  }
}

IpCache::SubscriptionId IpCache::subscribe(Observer observer) {
  std::lock_guard notify(notify_mu_);
  // Drain what is queued to the existing observers, then snapshot with nothing queued, so the new
  // observer sees every change exactly once: in the snapshot or as a later change.
  std::vector<Change> snapshot;
  for (;;) {
    std::vector<Change> batch;
    {
      std::lock_guard lock(mu_);
      if (pending_.empty()) {
        for (const auto& [p, h] : entries_)
          snapshot.push_back(Change{p, identity::kUnknown, h.winner().second.identity});
        break;
      }
      batch.swap(pending_);
    }
    for (auto& [id, obs] : observers_) obs(batch);
  }
  SubscriptionId sid = next_subscription_++;
  auto& obs = observers_.emplace(sid, std::move(observer)).first->second;
  if (!snapshot.empty()) obs(snapshot);
  return sid;
}

void IpCache::unsubscribe(SubscriptionId id) {
  std::lock_guard notify(notify_mu_);
  observers_.erase(id);
}

}  // namespace cilium::ipcache
