// Learned DNS addresses -> fqdn identities -> ipcache and policy maps.
#include "agent/fqdn/name_manager.h"

#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/policy/fqdn_pattern.h"

namespace cilium::fqdn {

namespace {

auto& log() {
  static auto l = cilium::logger("fqdn");
  return l;
}

}  // namespace

NameManager::NameManager(identity::Allocator& ids, ipcache::IpCache& ipcache, CacheOptions options,
                         std::function<void()> apply_policy, std::string state_file)
    : ids_(ids),
      ipcache_(ipcache),
      apply_policy_(std::move(apply_policy)),
      state_file_(std::move(state_file)),
      cache_(options) {
  if (state_file_.empty()) return;
  auto text = readFile(state_file_);
  if (!text.ok()) return;  // first start
  auto j = nlohmann::json::parse(*text, nullptr, false);
  Status st =
      j.is_discarded() ? Status(Error(ErrorCode::kInvalidArgument, "not JSON")) : cache_.restore(j);
  if (!st.ok())
    log()->warn("DNS cache state {} ignored: {}", state_file_, st.error().message());
  else
    log()->info("DNS cache restored entries={}", cache_.size());
}

// The kernel state stays: the pinned ipcache keeps the learned addresses enforceable while the
// agent restarts, and the restarted agent reads them back (kRestored) until this cache, restored
// from its state file, has allocated their identities again.
NameManager::~NameManager() = default;

void NameManager::applyPolicy() {
  if (apply_policy_) apply_policy_();
}

Status NameManager::setSelectors(std::vector<std::string> patterns) {
  std::lock_guard lock(mu_);
  if (patterns == selectors_) return okStatus();
  selectors_ = std::move(patterns);
  auto ips = cache_.addresses();
  for (const auto& [ip, h] : held_) ips.insert(ip);
  return reconcileLocked({ips.begin(), ips.end()});
}

Status NameManager::learn(uint16_t ep, const DnsResponse& r, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (r.addresses.empty()) return okStatus();
  // Every name of the chain resolves to the addresses (a toFQDNs for the CNAME target selects
  // them too, as in Cilium).
  std::set<IpAddr> touched;
  std::vector<std::string> names{r.name};
  names.insert(names.end(), r.cnames.begin(), r.cnames.end());
  for (const auto& n : names)
    for (const auto& ip : cache_.update(ep, n, r.addresses, now)) touched.insert(ip);
  dirty_ = true;
  return reconcileLocked({touched.begin(), touched.end()});
}

size_t NameManager::gc(Clock::time_point now) {
  std::lock_guard lock(mu_);
  size_t before = cache_.size();
  auto removed = cache_.expire(now);
  size_t n = before - cache_.size();
  if (n == 0) return 0;
  gc_deletions_ += n;
  dirty_ = true;
  if (auto st = reconcileLocked(removed); !st.ok())
    log()->warn("fqdn gc: {}", st.error().message());
  log()->debug("fqdn gc removed={} addresses={}", n, removed.size());
  return n;
}

size_t NameManager::clear(std::optional<uint16_t> ep, const std::string& pattern) {
  std::lock_guard lock(mu_);
  size_t before = cache_.size();
  auto removed = cache_.clear(ep, pattern);
  dirty_ = true;
  if (auto st = reconcileLocked(removed); !st.ok())
    log()->warn("fqdn cache clean: {}", st.error().message());
  return before - cache_.size();
}

Status NameManager::reconcileLocked(const std::vector<IpAddr>& ips) {
  Status first = okStatus();
  bool changed = false;
  for (const auto& ip : ips) {
    Status st = reconcileOneLocked(ip, changed);
    if (!st.ok() && first.ok()) first = st;
  }
  // Releases and relabels reach the maps now too; an answer that taught nothing new (the usual
  // repeated lookup) costs no policy pass.
  if (changed) applyPolicy();
  return first;
}

Status NameManager::reconcileOneLocked(const IpAddr& ip, bool& changed) {
  labels::Labels want;
  auto names = cache_.namesOf(ip);
  for (const auto& sel : selectors_)
    for (const auto& n : names)
      if (policy::fqdnMatches(sel, n)) {
        want.set({labels::Source::kFqdn, sel, ""});
        break;
      }
  auto it = held_.find(ip);
  IpPrefix prefix = IpPrefix::host(ip);
  if (want.empty()) {
    if (it == held_.end()) return okStatus();
    changed = true;
    // The address goes first: it must never resolve to an identity that is gone.
    Status st = ipcache_.remove(prefix, ipcache::Source::kFqdn);
    (void)ids_.release(it->second.id);
    held_.erase(it);
    return st;
  }
  if (it != held_.end() && it->second.labels == want) return okStatus();
  changed = true;
  CILIUM_ASSIGN_OR_RETURN(auto ident, ids_.allocateCidr(prefix, want));
  // The new identity is in the selections (the allocator told the policy engine); its map
  // entries are written before the address maps to it, so no packet meets it unselected.
  applyPolicy();
  if (auto st = ipcache_.upsert(prefix, ipcache::Info{ident.id}, ipcache::Source::kFqdn);
      !st.ok()) {
    (void)ids_.release(ident.id);
    return st.error().withContext(fmt::format("ipcache entry for {}", ip.toString()));
  }
  if (it != held_.end()) {
    (void)ids_.release(it->second.id);
    it->second = Held{ident.id, want};
  } else {
    held_.emplace(ip, Held{ident.id, want});
  }
  log()->debug("fqdn identity ip={} id={} labels=[{}]", ip.toString(), ident.id, want.toString());
  return okStatus();
}

nlohmann::json NameManager::cacheJson(std::optional<uint16_t> ep,
                                      const std::string& pattern) const {
  std::lock_guard lock(mu_);
  return cache_.toJson(ep, pattern);
}

std::vector<CacheEntry> NameManager::entries() const {
  std::lock_guard lock(mu_);
  return cache_.list(std::nullopt, "");
}

nlohmann::json NameManager::namesJson() const {
  std::lock_guard lock(mu_);
  auto sels = nlohmann::json::array();
  for (const auto& sel : selectors_) {
    std::map<std::string, std::set<std::string>> names;  // name -> ips
    auto ids = nlohmann::json::array();
    for (const auto& [ip, h] : held_) {
      if (!h.labels.has(labels::Source::kFqdn, sel)) continue;
      ids.push_back({{"ip", ip.toString()}, {"identity", h.id}});
      for (const auto& n : cache_.namesOf(ip))
        if (policy::fqdnMatches(sel, n)) names[n].insert(ip.toString());
    }
    auto nj = nlohmann::json::object();
    for (const auto& [n, ips] : names) nj[n] = std::vector<std::string>(ips.begin(), ips.end());
    sels.push_back({{"selector", "fqdn:" + sel}, {"names", nj}, {"identities", ids}});
  }
  return {{"selectors", sels}};
}

std::vector<std::string> NameManager::namesOf(uint32_t ep, const IpAddr& ip) const {
  if (ep == 0 || ep > std::numeric_limits<uint16_t>::max()) return {};
  std::lock_guard lock(mu_);
  return cache_.namesOf(static_cast<uint16_t>(ep), ip);
}

std::optional<identity::NumericIdentity> NameManager::identityOf(const IpAddr& ip) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(ip);
  if (it == held_.end()) return std::nullopt;
  return it->second.id;
}

NameManagerStats NameManager::stats() const {
  std::lock_guard lock(mu_);
  NameManagerStats s;
  std::set<std::string> names;
  for (const auto& e : cache_.list(std::nullopt, "")) names.insert(e.name);
  s.names = names.size();
  s.addresses = cache_.addresses().size();
  s.selected = held_.size();
  s.selectors = selectors_.size();
  s.gc_deletions = gc_deletions_;
  return s;
}

Status NameManager::save() {
  std::string text;
  {
    std::lock_guard lock(mu_);
    if (state_file_.empty() || !dirty_) return okStatus();
    dirty_ = false;
    text = cache_.toJson(std::nullopt, "").dump();
  }
  return writeFileAtomic(state_file_, text, 0600);
}

}  // namespace cilium::fqdn
