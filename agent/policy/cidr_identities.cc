// CIDR identities for policy: allocator references plus ipcache entries, per prefix.
#include "agent/policy/cidr_identities.h"

#include "agent/common/log.h"

namespace cilium::policy {

namespace {

auto& log() {
  static auto l = cilium::logger("policy");
  return l;
}

}  // namespace

CidrIdentities::CidrIdentities(identity::Allocator& ids, ipcache::IpCache& ipcache)
    : ids_(ids), ipcache_(ipcache) {}

CidrIdentities::~CidrIdentities() {
  std::lock_guard lock(mu_);
  while (!held_.empty()) {
    auto prefix = held_.begin()->first;
    held_.begin()->second.second = 1;
    releaseLocked(prefix);
  }
}

Status CidrIdentities::acquire(const std::vector<IpPrefix>& prefixes) {
  std::lock_guard lock(mu_);
  std::vector<IpPrefix> taken;
  for (const auto& p : prefixes) {
    auto it = held_.find(p);
    if (it != held_.end()) {
      it->second.second++;
      taken.push_back(p);
      continue;
    }
    auto ident = ids_.allocateCidr(p);
    Status st = ident.ok()
                    ? ipcache_.upsert(p, ipcache::Info{ident->id}, ipcache::Source::kGenerated)
                    : Status(ident.error());
    if (!st.ok()) {
      if (ident.ok()) (void)ids_.release(ident->id);
      for (const auto& t : taken) releaseLocked(t);
      return st.error().withContext(fmt::format("CIDR identity for {}", p.toString()));
    }
    held_.emplace(p, std::make_pair(ident->id, 1u));
    taken.push_back(p);
  }
  return okStatus();
}

void CidrIdentities::release(const std::vector<IpPrefix>& prefixes) {
  std::lock_guard lock(mu_);
  for (const auto& p : prefixes) releaseLocked(p);
}

void CidrIdentities::releaseLocked(const IpPrefix& prefix) {
  auto it = held_.find(prefix);
  if (it == held_.end()) return;
  if (--it->second.second > 0) return;
  identity::NumericIdentity id = it->second.first;
  held_.erase(it);
  // The ipcache entry goes first: an address must never resolve to an identity that is gone.
  if (auto st = ipcache_.remove(prefix, ipcache::Source::kGenerated); !st.ok())
    log()->warn("remove CIDR {} from ipcache: {}", prefix.toString(), st.error().toString());
  if (auto st = ids_.release(id); !st.ok())
    log()->warn("release CIDR identity {}: {}", id, st.error().toString());
}

std::map<IpPrefix, std::pair<identity::NumericIdentity, uint32_t>> CidrIdentities::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

}  // namespace cilium::policy
