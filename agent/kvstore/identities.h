// identity-allocation-mode=kvstore: cluster-wide identities in etcd with Cilium's key layout
//
//   cilium/state/identities/v1/id/<id>                 -> labels (sorted list)   master key, no
//   lease cilium/state/identities/v1/value/<labels>/<node>   -> <id>                   under the
//   node's lease
//
// A node uses an identity while its value key exists; when a node dies its lease takes its value
// keys with it, and a master key without value keys is garbage (collectGarbage()). Allocation is
// a transaction that creates the master key and this node's value key together, only if neither
// the number nor any value key of the labels exists yet, so agents racing for the same labels end
// with one number.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "agent/identity/allocator.h"
#include "agent/kvstore/etcd.h"

namespace cilium::kvstore {

inline constexpr std::string_view kIdentitiesPrefix = "cilium/state/identities/v1/";

// "k8s:a=1;k8s:b=2;" (Cilium's SortedList) back to labels; kInvalidArgument when malformed.
Result<labels::Labels> labelsOfSortedList(std::string_view text);

// The identities in etcd as this node sees them (a Mirror of the master keys), the backend that
// allocates through them, and the feed of other nodes' identities into the allocator.
class Identities {
 public:
  // `client` and `session` must outlive it. `node` names this node's value keys. With a
  // `state_file`, the identities this node uses are kept there too (rewritten atomically on every
  // change), so that a restarted agent restores its endpoints' identities even while etcd is
  // unreachable; their value keys are written again as soon as etcd answers.
  Identities(Client& client, Session& session, std::string node, std::string state_file = "",
             identity::NumericIdentity min_id = identity::kMinCluster,
             identity::NumericIdentity max_id = identity::kMaxCluster);
  ~Identities();
  Identities(const Identities&) = delete;
  Identities& operator=(const Identities&) = delete;

  // Starts mirroring the master keys; waits up to `timeout` for the first list.
  Status start(std::chrono::milliseconds timeout);
  void stop();

  // The allocator's cluster backend (refers to this object, which must outlive it).
  std::unique_ptr<identity::Backend> backend();

  // Every identity in etcd becomes one of `allocator`'s remote identities (added now, then kept
  // current: master keys deleted are removed). detach() before the allocator goes.
  void attach(identity::Allocator& allocator);
  void detach();

  // The number etcd holds for `labels` in the mirror (nullopt when unknown).
  std::optional<identity::NumericIdentity> lookup(const labels::Labels& labels) const;
  size_t size() const;

  // The backend's operations (see identity::Backend).
  Result<identity::NumericIdentity> acquire(const labels::Labels& labels);
  Status release(identity::NumericIdentity id, const labels::Labels& labels);
  // What this node used when it last stopped (the state file); each is re-registered in etcd in
  // the background (value key, and the master key if it is gone).
  Result<std::vector<identity::Identity>> restoreInUse();
  // Restored identities not yet registered again in etcd.
  size_t pendingRestores() const;

 private:
  Result<identity::NumericIdentity> acquireInEtcd(const labels::Labels& labels);
  void saveLocked() const;
  void restoreLoop();
  void onUpsert(const KeyValue& kv);
  void onDelete(const std::string& key);
  // Writes this node's value key for `id` if the master key still holds `key`.
  Result<bool> use(identity::NumericIdentity id, const std::string& key, int64_t lease);
  // `txn`, sent together with the transactions of concurrent callers (group commit).
  Result<TxnResult> batchedTxn(NestedTxn txn);
  struct BatchItem {
    NestedTxn txn;
    std::set<std::string> keys;  // what it writes
    bool done = false;
    Result<TxnResult> result = Error(ErrorCode::kInternal, "unset");
  };

  Client& client_;
  Session& session_;
  std::string node_;
  std::string state_file_;
  identity::NumericIdentity min_;
  identity::NumericIdentity max_;
  std::unique_ptr<Mirror> mirror_;

  std::mutex feed_mu_;  // orders the allocator's view: attach() and the mirror's changes
  mutable std::mutex mu_;
  std::map<identity::NumericIdentity, std::string> by_id_;   // id -> sorted labels
  std::map<std::string, identity::NumericIdentity> by_key_;  // sorted labels -> id
  identity::Allocator* allocator_ = nullptr;
  std::map<identity::NumericIdentity, std::string> in_use_;    // this node's, persisted
  std::map<identity::NumericIdentity, std::string> restores_;  // to register again
  bool stopping_ = false;
  std::condition_variable cv_;
  std::thread restorer_;
  std::mutex batch_mu_;  // the group commit's queue
  std::condition_variable batch_cv_;
  std::list<BatchItem*> batch_queue_;
  bool batch_flushing_ = false;
};

struct GcResult {
  size_t scanned = 0;  // master keys looked at
  size_t deleted = 0;  // master keys without any value key, deleted
};
// Deletes every master key that no node uses (no value key for its labels). Each deletion is a
// transaction that holds only if the master key is unchanged and still has no value key, so it
// is safe to run on several nodes at once and against allocations in flight.
Result<GcResult> collectGarbage(Client& client);

}  // namespace cilium::kvstore
