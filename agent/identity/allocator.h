// The identity allocator: label sets -> numeric identities, reference counted per node, with a
// pluggable backend for the cluster-wide agreement (local file now; CRD and kvstore later) and
// observers that hear every identity appear and disappear (the policy engine's selector cache
// hangs off them).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/inet.h"
#include "agent/identity/identity.h"
#include "agent/labels/labels.h"

namespace cilium::identity {

// Where identity numbers are agreed on. The Allocator calls a backend from several threads at
// once (without its own lock held, so that label sets allocate concurrently), but never twice at
// the same time for the same labels; implementations lock what they share.
class Backend {
 public:
  virtual ~Backend() = default;

  // The number for `labels`: the one already given to these labels (by this node before, or by
  // another node), else a new one. Called when this node's first user of the labels appears.
  // `known` is the number the node already knows for the labels (reported by another node); a
  // backend returns it unless the cluster-wide agreement says otherwise.
  // kResourceExhausted when the range has no free number.
  virtual Result<NumericIdentity> acquire(const labels::Labels& labels,
                                          std::optional<NumericIdentity> known) = 0;
  // This node's last user of `id` is gone. The backend may keep the number for the labels.
  virtual Status release(NumericIdentity id, const labels::Labels& labels) = 0;
  // Identities this node was using when it last stopped (for restore after a restart).
  virtual Result<std::vector<Identity>> restoreInUse() = 0;
  // "local", "crd", "kvstore".
  virtual std::string name() const = 0;
};

// Identities in a JSON file under a state directory (or only in memory). The file is rewritten
// atomically (temp file, fsync, rename) after every change, so a restarted agent gets the same
// numbers for the same labels. A released number stays bound to its labels and comes back for
// them; other labels get numbers never used before, and only when the range is exhausted are
// released numbers reused, least recently released first.
class LocalBackend final : public Backend {
 public:
  // `state_dir` "" keeps everything in memory. Reads `<state_dir>/<file_name>` when it exists;
  // a corrupt file is an error (kFailedPrecondition), never silently discarded.
  static Result<std::unique_ptr<LocalBackend>> open(const std::string& state_dir,
                                                    NumericIdentity min_id, NumericIdentity max_id,
                                                    const std::string& file_name);

  Result<NumericIdentity> acquire(const labels::Labels& labels,
                                  std::optional<NumericIdentity> known) override;
  Status release(NumericIdentity id, const labels::Labels& labels) override;
  Result<std::vector<Identity>> restoreInUse() override;
  std::string name() const override { return "local"; }

  // The file this backend persists to ("" in memory).
  const std::string& path() const { return path_; }

 private:
  struct Slot {
    labels::Labels labels;
    bool in_use = false;
    uint64_t released_seq = 0;  // order of release, for reuse
  };
  LocalBackend(std::string path, NumericIdentity min_id, NumericIdentity max_id)
      : path_(std::move(path)), min_(min_id), max_(max_id), next_(min_id) {}
  Status load();
  Status save() const;

  std::mutex mu_;  // the allocator calls for different labels at once
  std::string path_;
  NumericIdentity min_;
  NumericIdentity max_;
  NumericIdentity next_;  // lowest number never handed out
  uint64_t seq_ = 0;
  std::map<NumericIdentity, Slot> slots_;
  std::map<std::string, NumericIdentity> by_labels_;  // sortedList -> id
};

struct IdentityChange {
  enum class Kind : uint8_t { kAdded, kRemoved };
  Kind kind = Kind::kAdded;
  Identity identity;
};
// Receives changes in the order they happened. Called without the allocator's state lock held,
// one call at a time; it may call allocate()/release()/lookup() (those changes are delivered after
// the current call returns), but must not subscribe or unsubscribe.
using Observer = std::function<void(const std::vector<IdentityChange>&)>;

class Allocator {
 public:
  // `cluster` allocates cluster-scope identities (from 256), `local` node-local ones (CIDR,
  // IDENTITY_LOCAL_FLAG | n). Restores both: identities in use when the agent stopped are held
  // (present, listed, told to observers) until releaseRestored().
  static Result<std::unique_ptr<Allocator>> create(std::unique_ptr<Backend> cluster,
                                                   std::unique_ptr<Backend> local);
  // Local backends for both, persisted in `state_dir` (identities.json, local_identities.json);
  // "" keeps them in memory.
  static Result<std::unique_ptr<Allocator>> open(const std::string& state_dir);

  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // The identity of `labels` (already filtered with labels::LabelFilter by the caller), with one
  // more reference. Reserved label sets give the reserved identity (not reference counted);
  // release() of a reserved number is a no-op. Empty labels: kInvalidArgument.
  Result<Identity> allocate(const labels::Labels& labels);
  // The node-local identity of a CIDR prefix (labels from cidrLabels(), plus `extra`: the
  // `fqdn:` labels of an address the DNS proxy learned), one more reference.
  Result<Identity> allocateCidr(const IpPrefix& prefix, const labels::Labels& extra = {});
  // Drops one reference; the identity disappears (observers told) when none is left.
  // kNotFound for a number this node does not hold.
  Status release(NumericIdentity id);

  std::optional<Identity> lookup(NumericIdentity id) const;
  std::optional<Identity> lookupByLabels(const labels::Labels& labels) const;

  struct Entry {
    Identity identity;
    uint32_t references = 0;  // this node's users; 0 for reserved and remote-only identities
    bool reserved = false;
    bool restored = false;  // held from the last run until releaseRestored()
    bool remote = false;    // known from another node through the backend
  };
  // Every present identity, reserved ones included, by number.
  std::vector<Entry> list() const;

  // Identities other nodes use, reported by a cluster backend's watcher (CRD/kvstore) or by the
  // Kubernetes informers. They are present while reported, whatever this node's references.
  void upsertRemote(const Identity& identity);
  void removeRemote(NumericIdentity id);

  // Ends the restore hold: restored identities that nobody allocated again disappear.
  void releaseRestored();

  using SubscriptionId = uint64_t;
  // Registers `observer`; it first receives every present identity as kAdded (reserved ones
  // included), then every change. Must not be called from inside an observer.
  SubscriptionId subscribe(Observer observer);
  // After it returns, the observer is never called again (waits for a call in progress).
  void unsubscribe(SubscriptionId id);

 private:
  struct Record {
    labels::Labels labels;
    uint32_t references = 0;
    bool restored = false;
    bool remote = false;
    bool present() const { return references > 0 || restored || remote; }
  };
  Allocator(std::unique_ptr<Backend> cluster, std::unique_ptr<Backend> local);
  Status restore();
  // Takes one reference, acquiring from the backend (with `lock` released meanwhile) when this
  // node holds no reference yet.
  Result<Identity> allocateLocked(std::unique_lock<std::mutex>& lock, const labels::Labels& labels,
                                  bool local);
  // Tells the backend this node no longer uses `id` (with `lock` released meanwhile).
  Status releaseInBackend(std::unique_lock<std::mutex>& lock, NumericIdentity id,
                          const labels::Labels& labels);
  // Drops records that are no longer present and tells the backend; queues kRemoved.
  void dropIfUnusedLocked(NumericIdentity id, Record& rec);
  void queueLocked(IdentityChange::Kind kind, NumericIdentity id, const labels::Labels& labels);
  // Delivers queued changes (outside mu_, under notify_mu_).
  void deliver();
  SubscriptionId subscribeLocked(Observer observer);

  std::unique_ptr<Backend> cluster_;
  std::unique_ptr<Backend> local_;

  mutable std::mutex mu_;  // guards everything below except observers_
  std::unordered_map<NumericIdentity, Record> records_;
  std::unordered_map<std::string, NumericIdentity> by_labels_;  // sortedList -> id
  std::vector<IdentityChange> pending_;
  // Label sets (sortedList) with a backend call in flight, and the wait for one to end.
  std::set<std::string> busy_;
  std::condition_variable busy_cv_;

  std::mutex notify_mu_;  // one delivery at a time, in order; guards observers_
  std::map<SubscriptionId, Observer> observers_;
  SubscriptionId next_subscription_ = 1;
};

}  // namespace cilium::identity
