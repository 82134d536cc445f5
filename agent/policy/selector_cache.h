// The selector cache: every peer selector of every rule, with the set of identities it selects,
// kept up to date incrementally as identities appear and disappear, and as addresses of
// identities come and go (NetworkPolicy ipBlocks select pods by address). Not thread-safe; the
// Engine serializes access.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/common/inet.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/labels/selector.h"

namespace cilium::policy {

using identity::NumericIdentity;

// What a peer selector is, before caching.
struct PeerSelector {
  enum class Kind : uint8_t {
    kWildcard,  // every peer: identity 0 in the map (entity all, empty selectors)
    kLabels,    // a label selector over identity labels
    kCluster,   // every identity without a world label and without cidr/fqdn labels
    kCidr,      // CIDR identities whose prefix lies in `cidr` and not in any `except`;
                // a /0 also selects the world identities of its family. With `pods` (a
                // NetworkPolicy ipBlock) also every pod identity all of whose known addresses
                // lie in `cidr` and outside every `except`.
    kFqdn,      // toFQDNs: identities carrying the label `fqdn:<fqdn>` (agent/fqdn gives them
                // to the addresses the DNS proxy learned for matching names)
  };
  Kind kind = Kind::kWildcard;
  labels::LabelSelector labels;
  IpPrefix cidr;
  std::vector<IpPrefix> except;
  bool pods = false;
  std::string fqdn;  // kFqdn: the normalised matchName / matchPattern

  static PeerSelector wildcard() { return {}; }
  static PeerSelector ofLabels(labels::LabelSelector s);
  static PeerSelector cluster();
  static PeerSelector ofCidr(IpPrefix cidr, std::vector<IpPrefix> except);
  static PeerSelector ofIpBlock(IpPrefix cidr, std::vector<IpPrefix> except);
  static PeerSelector ofFqdn(std::string pattern);

  // `addresses`: the prefixes the ipcache maps to `id` (null: none known).
  bool selects(NumericIdentity id, const labels::Labels& labels,
               const std::set<IpPrefix>* addresses = nullptr) const;
  // Whether the selection depends on addresses (ipBlocks).
  bool usesAddresses() const { return kind == Kind::kCidr && pods; }
  // Canonical text: equal selectors have equal keys (GET /v1/policy/selectors shows it).
  std::string key() const;
};

class CachedSelector {
 public:
  const std::string& key() const { return key_; }
  const PeerSelector& spec() const { return spec_; }
  // Sorted identity numbers.
  const std::vector<NumericIdentity>& selections() const { return selections_; }
  bool selects(NumericIdentity id) const;
  bool isWildcard() const { return spec_.kind == PeerSelector::Kind::kWildcard; }
  size_t users() const { return users_; }

 private:
  friend class SelectorCache;
  std::string key_;
  PeerSelector spec_;
  std::vector<NumericIdentity> selections_;
  size_t users_ = 0;
};

struct SelectorInfo {
  std::string selector;
  std::vector<NumericIdentity> identities;
  size_t users = 0;
};

class SelectorCache {
 public:
  // One more user of the selector; the first user computes its selections from the known
  // identities. The pointer stays valid until the last remove().
  CachedSelector* add(const PeerSelector& spec);
  // One more user of a selector already in the cache.
  void ref(CachedSelector* sel);
  void remove(CachedSelector* sel);

  struct Change {
    CachedSelector* selector;
    NumericIdentity id;
    bool added;
  };
  // Applies identity changes; returns each (selector, identity) selection that changed.
  std::vector<Change> apply(const std::vector<identity::IdentityChange>& changes);
  // Applies ipcache changes (which identity each address has); returns each selection of an
  // address-dependent selector that changed.
  std::vector<Change> applyAddresses(const std::vector<ipcache::Change>& changes);

  // Identities known to the cache, with labels.
  const std::unordered_map<NumericIdentity, labels::Labels>& identities() const {
    return identities_;
  }
  std::vector<SelectorInfo> list() const;
  size_t size() const { return by_key_.size(); }

 private:
  const std::set<IpPrefix>* addressesOf(NumericIdentity id) const;

  std::unordered_map<std::string, std::unique_ptr<CachedSelector>> by_key_;
  std::unordered_map<NumericIdentity, labels::Labels> identities_;
  // The prefixes the ipcache maps to each identity (independent of identities_: either may be
  // learned first).
  std::unordered_map<NumericIdentity, std::set<IpPrefix>> addresses_;
};

}  // namespace cilium::policy
