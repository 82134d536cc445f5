// The endpoint manager: turns pod interfaces into enforced endpoints and keeps them enforced.
//
// create():  labels -> identity (allocator, security-relevant labels only) -> policy (engine)
//            -> policy map (atomic replace) -> ipcache podIP -> identity -> cilium_lxc entries
//            -> programs on the host-side veth -> /32 route -> policy revision bump -> ready.
//            It returns only once the datapath enforces the endpoint's policy.
// Regeneration: identity changes arrive from the engine as map deltas (applied in place);
// policy changes regenerate the affected endpoints fully, all queued ones with one
// PolicyMaps::replaceMany() (maps kept, patched or swapped; swaps batched). Requests are queued
// and coalesced on one worker thread; every endpoint reports the repository revision it enforces.
// remove(): every map entry, the ipcache entry, the route, the link, the programs, the state file;
//           the identity is released.
// restore(): endpoints persisted in <state-dir>/endpoints are brought back after a restart without
//           a window in which their policy is open: all policies are written with one
//           replaceMany() (an unchanged map is kept as it is, a changed one patched or swapped,
//           never deleted first), and programs are swapped onto the pinned links. Then stale
//           entries that belong to no restored endpoint are removed.
//
// Threading: every public method is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/error.h"
#include "agent/datapath/maps.h"
#include "agent/endpoint/endpoint.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/labels/filter.h"
#include "agent/policy/policy.h"

namespace cilium::endpoint {

// What the manager does to devices, routes and programs: the kernel in the agent, a fake in unit
// tests. Every call runs in the node's network namespace.
class Devices {
 public:
  virtual ~Devices() = default;
  // Attaches (or atomically replaces) the endpoint programs on the host-side veth, pinned.
  virtual Status attach(int ifindex) = 0;
  // Removes the programs and their pins; a device that is gone is not an error.
  virtual Status detach(int ifindex) = 0;
  // Installs (or replaces) the /32 route to the endpoint through its host-side veth.
  virtual Status addRoute(const IpAddr& ip, int ifindex) = 0;
  // Removes that route; absent is fine.
  virtual Status removeRoute(const IpAddr& ip, int ifindex) = 0;
  // Deletes the host-side veth (and so its pod-side peer); absent is fine.
  virtual Status deleteLink(int ifindex) = 0;
  // Whether a device with this index and name exists (restore skips endpoints whose device is
  // gone).
  virtual bool linkExists(int ifindex, const std::string& name) = 0;
  // ifindexes that carry pinned endpoint programs (stale ones are detached after a restore).
  virtual std::vector<int> attachedLinks() = 0;
  // Whether the device can be a pod's: it exists (with `name` when given), is the host side of
  // a veth whose peer is in another network namespace, and is none of the agent's own devices.
  // kInvalidArgument saying why not: an endpoint on any other device would let its removal
  // delete that device.
  virtual Status checkPodDevice(int ifindex, const std::string& name) = 0;
};

// Where endpoints' L7 policies go (the L7 proxies, agent/proxy): told before the policy maps that
// redirect to a proxy change, so that a proxy knows a peer before its traffic arrives. Called
// with the manager's regeneration lock held; must not call back into the manager.
class L7PolicySink {
 public:
  virtual ~L7PolicySink() = default;
  struct Update {
    uint16_t endpoint_id = 0;
    uint32_t identity = 0;
    std::optional<IpAddr> ipv4;
    policy::L7Policy l7;         // empty: the endpoint has no L7 rules (any more)
    std::optional<IpAddr> ipv6;  // a dual-stack endpoint's (its IPv6 traffic is redirected too)
  };
  virtual void l7PoliciesChanged(const std::vector<Update>& updates) = 0;
  virtual void endpointRemoved(uint16_t endpoint_id) = 0;
};

struct ManagerOptions {
  // Endpoint state files go to <state_dir>/endpoints; "" keeps nothing on disk.
  std::string state_dir;
  // Reserves a new endpoint's IPv4 address for `owner` (its container),
  // refusing with the reason an address that is not one of this node's pod addresses or that
  // another owner holds (the node's IPAM). Unset: addresses are not checked (tests).
  std::function<Status(const IpAddr& ip, const std::string& owner)> claim_address;
  // Whether an address is inside this node's pod CIDR now. restore() drops an endpoint whose
  // address is not (the node came back with another CIDR: its pods must be recreated, as in
  // Cilium). Unset: every restored address is kept.
  std::function<bool(const IpAddr& ip)> pod_address;
  labels::LabelFilter filter = labels::LabelFilter::defaults();
  // How long create() and the worker may keep an identity that failed to regenerate.
  size_t log_entries = 20;
};

// One regeneration, for the regeneration-time statistic.
struct RegenerationStat {
  uint16_t endpoint_id = 0;
  std::chrono::nanoseconds duration{0};
  bool full = true;  // full policy replace (false: an incremental delta)
  bool ok = true;
  std::string reason;
};

struct RestoreResult {
  size_t restored = 0;       // endpoints regenerated from state
  size_t skipped = 0;        // state files whose device is gone or that failed (removed)
  size_t stale_removed = 0;  // map entries, policy maps and links that belonged to no endpoint
};

// The forms of /endpoint/{id}.
struct Ref {
  enum class Kind { kId, kContainerId, kContainerName, kPodName, kDockerEndpoint, kCniAttachment };
  Kind kind = Kind::kId;
  uint16_t id = 0;
  std::string value;      // container id, name, "ns/name", docker endpoint id
  std::string interface;  // kCniAttachment
};

class Manager {
 public:
  struct Deps {
    identity::Allocator* ids = nullptr;
    policy::Engine* engine = nullptr;
    ipcache::IpCache* ipcache = nullptr;
    datapath::Maps maps;
    Devices* devices = nullptr;
    L7PolicySink* l7 = nullptr;  // optional
  };
  // Subscribes to the engine's identity-change deltas and starts the regeneration worker.
  static Result<std::unique_ptr<Manager>> create(Deps deps, ManagerOptions options = {});
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Creates and regenerates an endpoint; returns it ready. kAlreadyExists when the id, the
  // address or the device is taken; kInvalidArgument for a bad spec. On failure nothing of the
  // endpoint is left behind. One pod has one live endpoint: an endpoint of the same pod
  // (namespace/name) from another container (an older sandbox) is removed first.
  Result<Endpoint> add(Spec spec);
  // Replaces the endpoint's labels (PATCH): new identity, regenerated, old identity released.
  // Unchanged labels (and named ports, when given) are a no-op.
  Result<Endpoint> updateLabels(const Ref& ref, const labels::Labels& labels,
                                std::optional<std::vector<NamedPort>> named_ports = std::nullopt);

  // What the orchestrator knows of a pod: its labels and named ports. A resolver answers for
  // the endpoint a CNI ADD describes (pod namespace and name); add() stores the answer in the
  // spec, so it is persisted and a restart restores the same identity. An error fails add()
  // (kUnavailable: the pod is not known yet, the CNI plugin says "try again later").
  struct PodMetadata {
    labels::Labels labels;
    std::vector<NamedPort> named_ports;
  };
  using PodResolver = std::function<Result<PodMetadata>(const Spec& spec)>;
  // Set before endpoints are added (the Kubernetes watchers do); called without locks held and
  // only for specs with a pod name.
  void setPodResolver(PodResolver resolver);
  // Deletes the endpoint and everything the agent made for it. Returns the number of cleanup
  // steps that failed (0 = clean); kNotFound for an unknown endpoint.
  Result<int> remove(const Ref& ref);

  std::optional<Endpoint> get(const Ref& ref) const;
  std::vector<Endpoint> list() const;
  size_t size() const;

  // Queues regeneration (coalesced with requests not yet started). Empty `ids`: every endpoint.
  void requestRegeneration(std::vector<uint16_t> ids, std::string reason);
  // Applies the identity deltas queued so far to the policy maps now, on the calling thread
  // (the DNS proxy calls it after new identities appeared, before it releases an answer, so the
  // pod's first connection to the name is already allowed). Must not be called from a listener.
  void applyPendingChanges();
  // A policy import or delete reached `revision`: affected endpoints are regenerated, the others
  // are marked as enforcing it (their policy did not change).
  void policyChanged(uint64_t revision, const std::vector<uint16_t>& affected);
  // Waits until every endpoint enforces `revision` or later (or is not ready); false on timeout.
  bool waitForRevision(uint64_t revision, std::chrono::milliseconds timeout) const;

  // Restores endpoints from the state directory (see the file comment). Call once, before add().
  Result<RestoreResult> restore();

  // Called after every regeneration, on the thread that ran it (the metrics exporter feeds
  // cilium_endpoint_regeneration_time_stats_seconds from it). Set before use.
  void setRegenerationListener(std::function<void(const RegenerationStat&)> listener);
  // Count, and p50/p99 of the last 1024 regenerations.
  struct RegenerationSummary {
    uint64_t count = 0;
    uint64_t failures = 0;
    std::chrono::nanoseconds p50{0};
    std::chrono::nanoseconds p99{0};
  };
  RegenerationSummary regenerationSummary() const;

 private:
  Manager(Deps deps, ManagerOptions options);
  // Called with regen_mu_ held.
  Status regenerateLocked(uint16_t id, const std::string& reason);
  // Full regeneration of many endpoints (id, reason): policies resolved, then written with
  // PolicyMaps::replaceMany() in chunks and the revision bumped once per chunk, so the
  // kernel's grace periods for swapped maps are shared. One Status per job.
  std::vector<Status> regenerateManyLocked(
      const std::vector<std::pair<uint16_t, std::string>>& jobs);
  Status applyDeltaLocked(uint16_t id);
  Status programEndpointLocked(const Endpoint& ep);
  int cleanupLocked(const Endpoint& ep, bool delete_link);
  Status persist(const Endpoint& ep) const;
  void removeStateFile(uint16_t id) const;
  std::string statePath(uint16_t id) const;
  // Removes endpoint `id` (which must exist): datapath state, identity, state file. Call with
  // regen_mu_ held; returns the number of cleanup steps that failed.
  int removeLocked(uint16_t id);
  // Applies the identity and address deltas queued for every endpoint now (regen_mu_ held).
  void applyPendingDeltasLocked();
  std::optional<uint16_t> findLocked(const Ref& ref) const;
  Result<uint16_t> pickIdLocked(uint16_t wanted) const;
  void appendLog(Endpoint& ep, bool ok, std::string message);
  void record(const RegenerationStat& stat);
  void worker();
  Result<identity::Identity> allocateIdentity(const labels::Labels& labels);
  labels::Labels withDerivedLabels(const Spec& spec) const;

  Deps deps_;
  ManagerOptions options_;

  // Serializes every engine attach/consume and every datapath write, so deltas apply in the
  // order the engine produced them.
  std::mutex regen_mu_;
  // Guards endpoints_ and the queue; never held while waiting for regen_mu_.
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<uint16_t, Endpoint> endpoints_;
  std::set<uint16_t> pending_full_;
  std::set<uint16_t> pending_delta_;
  std::map<uint16_t, std::string> pending_reason_;
  bool stopping_ = false;
  std::thread worker_;

  mutable std::mutex resolver_mu_;
  PodResolver resolver_;

  mutable std::mutex stats_mu_;
  std::function<void(const RegenerationStat&)> listener_;
  std::vector<std::chrono::nanoseconds> recent_;  // ring of the last 1024
  size_t recent_next_ = 0;
  uint64_t regen_count_ = 0;
  uint64_t regen_failures_ = 0;
};

}  // namespace cilium::endpoint
