// The CidrIdentityProvider the agent uses: a node-local identity from the allocator for each
// prefix that policy references, published in the ipcache (source kGenerated) so the datapath
// resolves addresses in the prefix to it.
#pragma once

#include <map>
#include <mutex>

#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/policy/policy.h"

namespace cilium::policy {

class CidrIdentities final : public CidrIdentityProvider {
 public:
  // Both must outlive this object.
  CidrIdentities(identity::Allocator& ids, ipcache::IpCache& ipcache);
  ~CidrIdentities() override;

  // All or nothing: on error, references taken by this call are dropped again.
  Status acquire(const std::vector<IpPrefix>& prefixes) override;
  void release(const std::vector<IpPrefix>& prefixes) override;

  // Prefix -> (identity, references), for tests and status.
  std::map<IpPrefix, std::pair<identity::NumericIdentity, uint32_t>> held() const;

 private:
  void releaseLocked(const IpPrefix& prefix);

  identity::Allocator& ids_;
  ipcache::IpCache& ipcache_;
  mutable std::mutex mu_;
  std::map<IpPrefix, std::pair<identity::NumericIdentity, uint32_t>> held_;
};

}  // namespace cilium::policy
