// Feeds the policy Engine from a source's NetworkPolicies, CiliumNetworkPolicies and
// CiliumClusterwideNetworkPolicies (the API server or a manifests directory). Each object is
// decoded here, once, and its rules go in force as the cluster's (Owner::kCluster):
//
// - a valid object replaces its earlier rules;
// - an object that cannot be decoded or enforced keeps its last good rules when it has some
//   (also those restored from the last run), and otherwise fails closed: a stand-in puts the
//   endpoints it would select into default deny (failClosedPolicy(), decode.h);
// - a deleted object's rules go; rules restored from the last run whose object is gone are
//   pruned once the first full state is in.
//
// The first full state is imported in one revision (one regeneration), later changes one object
// at a time. Rules the REST API imported are never touched.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/error.h"
#include "agent/k8s/publisher.h"
#include "agent/k8s/resources.h"
#include "agent/k8s/store.h"
#include "agent/policy/policy.h"

namespace cilium::k8s {
struct Stores;
}

namespace cilium::policy {

// Where the feed's changes go: the Engine, under the caller's serialisation of policy changes,
// then the regeneration of the endpoints a change affects. The control plane implements it.
class FeedTarget {
 public:
  virtual ~FeedTarget() = default;
  // Imports as Owner::kCluster and waits until the affected endpoints enforce the result.
  virtual Result<ImportResult> importObjects(std::vector<PolicyObject> objects) = 0;
  virtual Result<DeleteResult> deleteObject(const ObjectRef& object) = 0;
  // The objects with rules of Owner::kCluster in force.
  virtual std::vector<ObjectRef> objects() const = 0;
};

// The Engine itself as a target (tests; a caller without regeneration to do).
class EngineTarget final : public FeedTarget {
 public:
  explicit EngineTarget(Engine& engine) : engine_(engine) {}
  Result<ImportResult> importObjects(std::vector<PolicyObject> objects) override;
  Result<DeleteResult> deleteObject(const ObjectRef& object) override;
  std::vector<ObjectRef> objects() const override;

 private:
  Engine& engine_;
};

// Called (on a source thread, without locks held) with each object's outcome: enforced at a
// revision, or rejected with the reason (and, for a rejection, whether the object's last good
// rules or a fail-closed stand-in are in force instead).
using StatusListener = std::function<void(std::string_view kind, const k8s::ObjectMeta& meta,
                                          const k8s::PolicyStatus& status)>;

class K8sFeed {
 public:
  // Imports every policy the stores hold (one batch), prunes restored rules whose object is gone,
  // then follows changes. The stores must have synced; they and the target must outlive the
  // feed. `on_status` may be empty.
  static Result<std::unique_ptr<K8sFeed>> start(FeedTarget& target, k8s::Stores& stores,
                                                StatusListener on_status = {});
  ~K8sFeed();  // stops following; the rules stay
  K8sFeed(const K8sFeed&) = delete;
  K8sFeed& operator=(const K8sFeed&) = delete;

  // Objects currently rejected, with why ("CiliumNetworkPolicy default/rule1: spec...").
  std::map<ObjectRef, std::string> rejected() const;

 private:
  struct Pending {
    k8s::ObjectMeta meta;
    std::optional<nlohmann::json> raw;  // nullopt: deleted
  };
  K8sFeed(FeedTarget& target, k8s::Stores& stores, StatusListener on_status);
  template <typename T>
  void watch(k8s::Store<T>& store, std::string_view kind);
  void changed(std::string_view kind, const k8s::ObjectMeta& meta,
               std::optional<nlohmann::json> raw);
  // What the object puts in force: its rules, or the fail-closed stand-in; nullopt when it has
  // last good rules to keep (or nothing can be made of it). Records the rejection.
  std::optional<PolicyObject> decide(std::string_view kind, const k8s::ObjectMeta& meta,
                                     nlohmann::json raw, const std::set<ObjectRef>& in_force);
  void apply(std::string_view kind, const Pending& p);
  void flushBatch();
  void pruneVanished();
  void report(std::string_view kind, const k8s::ObjectMeta& meta, k8s::PolicyStatus status);

  FeedTarget& target_;
  k8s::Stores& stores_;
  StatusListener on_status_;
  // Held across every change so the batch and later changes stay in order.
  mutable std::mutex mu_;
  bool batching_ = true;
  std::map<ObjectRef, Pending> pending_;
  // What each object's rules were last made from. Updates that change none of it (the status
  // this agent writes, resourceVersion, managedFields) are ignored.
  std::map<ObjectRef, nlohmann::json> processed_;
  std::map<ObjectRef, std::string> rejected_;
  std::vector<std::function<void()>> unregister_;
};

}  // namespace cilium::policy
