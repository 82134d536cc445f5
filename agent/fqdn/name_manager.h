// The glue between the DNS proxy and policy (Cilium's NameManager): the FQDN cache, and for each
// learned address that some toFQDNs selector's pattern matches (through any name the address
// has) a node-local identity with labels cidr:<ip>/32, reserved:world and fqdn:<pattern> for
// every such selector, published in the ipcache (source fqdn). learn() returns only once those
// identities are in the policy maps of the endpoints whose selectors select them, so the DNS
// proxy can release the answer. Expired addresses lose their identity again (gc()).
//
// Threading: every method is thread-safe (one mutex, held across the identity, ipcache and
// policy-map updates so that changes apply in order).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/fqdn/cache.h"
#include "agent/fqdn/dns_message.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"

namespace cilium::fqdn {

struct NameManagerStats {
  size_t names = 0;      // distinct names in the cache
  size_t addresses = 0;  // addresses in the cache
  size_t selected = 0;   // addresses with an fqdn identity
  size_t selectors = 0;  // toFQDNs patterns in force
  uint64_t gc_deletions = 0;
};

class NameManager {
 public:
  // `apply_policy` writes the policy deltas queued by identity changes to the maps now
  // (endpoint::Manager::applyPendingChanges); null in tests without endpoints. `state_file`
  // ("" = none) holds the cache across restarts: read here, written by save().
  NameManager(identity::Allocator& ids, ipcache::IpCache& ipcache, CacheOptions options,
              std::function<void()> apply_policy, std::string state_file = "");
  ~NameManager();
  NameManager(const NameManager&) = delete;
  NameManager& operator=(const NameManager&) = delete;

  // The toFQDNs patterns in force (policy::Engine::fqdnSelectors()); relabels every address.
  Status setSelectors(std::vector<std::string> patterns);
  // An answer the DNS proxy allowed for endpoint `ep`: cached, and its addresses enforceable
  // when this returns (an error leaves them as they were: world).
  Status learn(uint16_t ep, const DnsResponse& response, Clock::time_point now = Clock::now());
  // Drops expired entries and the identities nothing needs any more; returns entries removed.
  size_t gc(Clock::time_point now = Clock::now());
  // DELETE /fqdn/cache: drops entries of `ep` (all when nullopt) matching `pattern` ("" = all).
  size_t clear(std::optional<uint16_t> ep, const std::string& pattern);

  // GET /fqdn/cache (Cilium's DNSLookup list).
  nlohmann::json cacheJson(std::optional<uint16_t> ep, const std::string& pattern) const;
  // GET /fqdn/names: per selector the names and addresses it selects and the identities.
  nlohmann::json namesJson() const;
  std::vector<CacheEntry> entries() const;
  // The names endpoint `ep` looked up that resolve to `ip` now (Hubble's source_names and
  // destination_names); empty for none.
  std::vector<std::string> namesOf(uint32_t ep, const IpAddr& ip) const;
  // The identity an address has from here (nullopt: none).
  std::optional<identity::NumericIdentity> identityOf(const IpAddr& ip) const;
  NameManagerStats stats() const;
  // Writes the state file when something changed since the last save.
  Status save();

 private:
  struct Held {
    identity::NumericIdentity id = identity::kUnknown;
    labels::Labels labels;  // the fqdn: labels
  };
  // Brings the identities of `ips` in line with the cache and the selectors (mu_ held).
  Status reconcileLocked(const std::vector<IpAddr>& ips);
  // One address; sets `changed` when it allocated, relabeled or released an identity.
  Status reconcileOneLocked(const IpAddr& ip, bool& changed);
  void applyPolicy();

  identity::Allocator& ids_;
  ipcache::IpCache& ipcache_;
  std::function<void()> apply_policy_;
  std::string state_file_;
  mutable std::mutex mu_;
  DnsCache cache_;
  std::vector<std::string> selectors_;
  std::map<IpAddr, Held> held_;
  uint64_t gc_deletions_ = 0;
  bool dirty_ = false;
};

}  // namespace cilium::fqdn
