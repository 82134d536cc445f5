// The ipcache: address prefixes -> security identity and, for other nodes' pods, the tunnel
// endpoint behind them, fed by several sources with a precedence between them, written to the
// kernel's cilium_ipcache. Every change that can change a verdict is followed by a bump of the
// datapath policy revision (bpf/abi/config.h), so established connections are re-checked.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/datapath/maps.h"
#include "agent/identity/identity.h"

namespace cilium::ipcache {

// Who says what a prefix is. When several sources hold one prefix, the highest wins; removing it
// lets the next one take over. Order (low to high) follows Cilium's source precedence.
enum class Source : uint8_t {
  kRestored = 0,    // read back from the pinned map after a restart, until sources resync
  kGenerated,       // CIDR identities for prefixes that policy references
  kFqdn,            // addresses the DNS proxy learned for toFQDNs selectors (agent/fqdn)
  kLocalApi,        // the agent's REST API
  kKubernetes,      // Pods/Nodes/Endpoints from the apiserver
  kCustomResource,  // CiliumEndpoint/CiliumNode objects
  kKvstore,         // etcd (cluster mesh)
  kLocal,           // this node: local endpoints, the node's own addresses (as identity host)
};

std::string_view sourceName(Source s);

struct Info {
  identity::NumericIdentity identity = identity::kUnknown;
  std::optional<IpAddr> tunnel_endpoint;  // node to tunnel to (VXLAN), when remote
  uint8_t encrypt_key = 0;
  uint16_t node_id = 0;

  bool operator==(const Info&) const = default;
};

struct Entry {
  IpPrefix prefix;
  Info info;
  Source source = Source::kRestored;  // the winning source
};

// A prefix whose winning identity changed (kUnknown: the prefix was, or is now, absent).
struct Change {
  IpPrefix prefix;
  identity::NumericIdentity before = identity::kUnknown;
  identity::NumericIdentity after = identity::kUnknown;
  bool operator==(const Change&) const = default;
};
// Receives changes in the order they happened, one call at a time, without the cache's state
// lock held. It must not call back into the IpCache (its delivery lock is held).
using Observer = std::function<void(const std::vector<Change>&)>;

class IpCache {
 public:
  // `map` is the kernel ipcache (FakeMap in tests); `runtime` holds RUNTIME_POLICY_REV. Either
  // may be null: the cache then only keeps its userspace state (for tools and tests).
  IpCache(datapath::IpcacheMap* map, datapath::RuntimeConfigMap* runtime);

  // Sets what `source` says about `prefix`. When that changes the winning entry, the kernel map is
  // written and, if the identity changed, the policy revision bumped. On a kernel error the
  // userspace state is left as it was and the error returned. Identity 0 is kInvalidArgument.
  Status upsert(const IpPrefix& prefix, const Info& info, Source source);
  // Withdraws what `source` said about `prefix`; the next source (if any) takes over. Absent is
  // fine.
  Status remove(const IpPrefix& prefix, Source source);
  // Withdraws every prefix `source` holds (a source resynced, or the restore phase ended).
  Status removeAll(Source source);

  // The winning entry for exactly `prefix`.
  std::optional<Entry> get(const IpPrefix& prefix) const;
  // Longest-prefix match of an address, as the datapath resolves it (nullopt = world).
  std::optional<Entry> lookup(const IpAddr& addr) const;
  // Every winning entry, ordered by family, then address, then prefix length
  // (`cilium-dbg bpf ipcache list` / `GET /v1/ip`).
  std::vector<Entry> list() const;

  // Reads the kernel map into source kRestored (after an agent restart: keeps the datapath's view
  // until the real sources have re-announced, then removeAll(kRestored)).
  Status restoreFromKernel();
  // Rewrites the kernel map from the userspace state: writes every winning entry and deletes
  // kernel entries that are not in it; bumps the revision if anything changed.
  Status syncToKernel();

  using SubscriptionId = uint64_t;
  // Registers `observer`: it first receives every entry (before = kUnknown), then every change
  // of a prefix's winning identity. The policy engine learns the addresses of identities here.
  SubscriptionId subscribe(Observer observer);
  // After it returns, the observer is never called again (waits for a call in progress).
  void unsubscribe(SubscriptionId id);

 private:
  struct Holders {
    std::map<Source, Info> by_source;
    const std::pair<const Source, Info>& winner() const { return *by_source.rbegin(); }
  };
  Status writeKernel(const IpPrefix& prefix, const std::optional<Info>& info);
  Status bumpRevision();
  Status restoreLocked();
  // Queues a change of the winning identity for the observers (mu_ held).
  void queueLocked(const IpPrefix& prefix, identity::NumericIdentity before,
                   identity::NumericIdentity after);
  // Delivers queued changes (outside mu_, under notify_mu_).
  void deliver();

  datapath::IpcacheMap* map_;
  datapath::RuntimeConfigMap* runtime_;
  mutable std::mutex mu_;
  std::map<IpPrefix, Holders> entries_;
  std::vector<Change> pending_;

  std::mutex notify_mu_;  // one delivery at a time, in order; guards observers_
  std::map<SubscriptionId, Observer> observers_;
  SubscriptionId next_subscription_ = 1;
};

// One line as `cilium-dbg bpf ipcache list` prints it:
// "10.0.1.5/32  identity=256 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>".
std::string formatEntry(const Entry& e);

// Kernel key and value for an entry (cluster id 0).
ipcache_key kernelKey(const IpPrefix& prefix);
remote_endpoint_info kernelValue(const Info& info);
IpPrefix prefixOfKey(const ipcache_key& key);

}  // namespace cilium::ipcache
