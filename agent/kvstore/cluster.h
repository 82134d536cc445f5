// Nodes and endpoints shared through etcd with Cilium's key layout, each under the agent's lease
// (so a dead agent's node and endpoints vanish with it):
//
//   cilium/state/nodes/v1/<cluster>/<node>   -> the node as JSON (Cilium's node.Node fields)
//   cilium/state/ip/v1/default/<ip>          -> {"IP", "ID" (identity), "HostIP" (tunnel endpoint),
//   ...}
//
// NodeSync publishes this node and feeds every other node into node::Manager; EndpointSync
// publishes the local endpoints and feeds every other node's endpoints into the ipcache
// (Source::kKvstore, tunnel endpoint = HostIP). Both mirror their prefix (etcd.h), so after an
// outage or a compaction they converge without stale entries.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/inet.h"
#include "agent/identity/identity.h"
#include "agent/ipcache/ipcache.h"
#include "agent/kvstore/etcd.h"
#include "agent/node/node.h"

namespace cilium::endpoint {
class Manager;
}

namespace cilium::kvstore {

inline constexpr std::string_view kNodesPrefix = "cilium/state/nodes/v1/";
inline constexpr std::string_view kIpPrefix = "cilium/state/ip/v1/default/";

// Cilium's node.Node JSON: Name, Cluster, IPAddresses [{Type, IP}], IPv4AllocCIDR {IP, Mask},
// IPv4HealthIP, BootID (and the fields Cilium adds, written empty).
std::string nodeToJson(const node::Node& n, const std::string& cluster);
// Accepts what nodeToJson() writes and Cilium's own; IPv4AllocCIDR may also be "a.b.c.d/n".
Result<node::Node> nodeFromJson(std::string_view text);

// One ipcache pair (Cilium's identity.IPIdentityPair).
struct IpPair {
  IpAddr ip;
  identity::NumericIdentity id = identity::kUnknown;
  std::optional<IpAddr> host_ip;  // the node hosting it (tunnel endpoint)
  std::string k8s_namespace;
  std::string k8s_pod_name;
  bool operator==(const IpPair&) const = default;
};
std::string ipPairToJson(const IpPair& p);
Result<IpPair> ipPairFromJson(std::string_view text);

class NodeSync {
 public:
  // Every node of `cluster` in etcd but `self` goes into `manager` (updateFromKvstore). All
  // references must outlive it.
  NodeSync(Client& client, Session& session, node::Manager& manager, std::string cluster,
           std::string self);
  ~NodeSync();
  Status start(std::chrono::milliseconds timeout);
  void stop();
  // This node as others should see it (owned by the session: re-written after a lost lease).
  void publish(const node::Node& self);
  // The nodes' keys as mirrored (tests, status).
  size_t size() const;

 private:
  Client& client_;
  Session& session_;
  node::Manager& manager_;
  std::string cluster_;
  std::string self_;
  std::unique_ptr<Mirror> mirror_;
  mutable std::mutex mu_;
  std::set<std::string> known_;
};

class EndpointSync {
 public:
  // Pairs whose HostIP is `host_ip` (this node's, from an earlier run of it) are not fed into
  // the ipcache: local endpoints come from the endpoint manager. All references must outlive it.
  EndpointSync(Client& client, Session& session, ipcache::IpCache& ipcache,
               std::optional<IpAddr> host_ip);
  ~EndpointSync();
  // Lists the pairs and follows them; waits up to `timeout` for the first list. `on_synced` (may
  // be empty) is called after each full list, once its pairs are in the ipcache, also when the
  // first one comes after the timeout (etcd was down).
  Status start(std::chrono::milliseconds timeout, std::function<void()> on_synced = {});
  void stop();

  // The local endpoints now: new and changed pairs are written, those no longer listed deleted.
  void publish(const std::vector<IpPair>& local);
  // Publishes `manager`'s endpoints (with an identity and an IPv4 address) now and whenever
  // kick() is called, and every `resync` in any case, on a thread of its own until stop().
  void follow(endpoint::Manager& manager, std::chrono::milliseconds resync);
  void kick();

  // Remote pairs in the ipcache now.
  size_t remoteCount() const;

 private:
  void onUpsert(const KeyValue& kv);
  void onDelete(const std::string& key);
  void followLoop(endpoint::Manager& manager, std::chrono::milliseconds resync);

  Client& client_;
  Session& session_;
  ipcache::IpCache& ipcache_;
  std::optional<IpAddr> host_ip_;
  std::unique_ptr<Mirror> mirror_;

  mutable std::mutex mu_;
  std::map<std::string, IpPrefix> remote_;        // key -> prefix fed to the ipcache
  std::map<std::string, std::string> published_;  // key -> value
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stopping_ = false;
  std::thread follower_;
};

}  // namespace cilium::kvstore
