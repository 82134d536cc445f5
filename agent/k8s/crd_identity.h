// The CRD identity backend: cluster-wide identities stored as CiliumIdentity objects (name = the
// numeric identity, security-labels = the labels), allocated create-if-absent so that agents
// allocating the same labels at the same time end with one identity, with a local cache fed by a
// CiliumIdentity informer (any Store<CiliumIdentity>).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "agent/identity/allocator.h"
#include "agent/k8s/client.h"
#include "agent/k8s/store.h"

namespace cilium::k8s {

// "k8s:app=web" labels <-> CiliumIdentity security-labels {"k8s:app": "web"}.
StringMap securityLabels(const labels::Labels& labels);
Result<labels::Labels> labelsOfSecurityLabels(const StringMap& security_labels);

class CrdIdentityBackend final : public identity::Backend {
 public:
  // `cache` (filled by an informer) must outlive the backend.
  CrdIdentityBackend(Client& client, const Store<CiliumIdentity>& cache,
                     identity::NumericIdentity min_id = identity::kMinCluster,
                     identity::NumericIdentity max_id = identity::kMaxCluster);

  // The number whose CiliumIdentity carries `labels`. Candidates are probed in an order derived
  // from the labels only, so two agents try the same numbers in the same order: for each number,
  // the object holds these labels (use it), other labels (next number), or nothing (create it;
  // 409 Conflict means another agent won the race, and its object is read back).
  Result<identity::NumericIdentity> acquire(
      const labels::Labels& labels, std::optional<identity::NumericIdentity> known) override;
  // Identities stay in the cluster when a node stops using them (the operator's GC removes
  // unused ones, as in Cilium).
  Status release(identity::NumericIdentity id, const labels::Labels& labels) override;
  Result<std::vector<identity::Identity>> restoreInUse() override { return {{}}; }
  std::string name() const override { return "crd"; }

 private:
  // Reads identity `id` from the apiserver: its labels, nullopt when absent.
  Result<std::optional<labels::Labels>> fetch(identity::NumericIdentity id);

  Client& client_;
  const Store<CiliumIdentity>& cache_;
  identity::NumericIdentity min_;
  identity::NumericIdentity max_;
};

// identity-allocation-mode=crd: every CiliumIdentity in `store` is one of the allocator's remote
// identities (other nodes' pods), so selectors match pods elsewhere in the cluster. Objects that
// are not a number with valid labels are skipped with a warning. Unregisters on destruction;
// `store` and `allocator` must outlive it.
class RemoteIdentities {
 public:
  RemoteIdentities(Store<CiliumIdentity>& store, identity::Allocator& allocator);
  ~RemoteIdentities();
  RemoteIdentities(const RemoteIdentities&) = delete;
  RemoteIdentities& operator=(const RemoteIdentities&) = delete;

 private:
  void upsert(const CiliumIdentity& ci);
  Store<CiliumIdentity>& store_;
  identity::Allocator& allocator_;
  Store<CiliumIdentity>::HandlerId handlers_ = 0;
};

}  // namespace cilium::k8s
