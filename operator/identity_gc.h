// Identity garbage collection in CRD mode (cilium-operator): a CiliumIdentity that no
// CiliumEndpoint refers to (status.identity.id) for identity-heartbeat-timeout is deleted, checked
// every identity-gc-interval, as Cilium's operator does. "Unused since" is kept in memory: a new
// leader starts the timeout afresh, which errs on the side of keeping identities. A deletion is
// conditional on the resourceVersion seen. Known limit (as in Cilium, where the heartbeat
// timeout makes it rare): an agent that picks up an identity in the instant it is deleted keeps
// using the number until another agent re-creates the object for the same labels.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "agent/common/periodic.h"
#include "agent/k8s/client.h"
#include "agent/k8s/store.h"

namespace cilium::op {

struct IdentityGcOptions {
  std::chrono::milliseconds interval{15 * 60 * 1000};           // identity-gc-interval
  std::chrono::milliseconds heartbeat_timeout{30 * 60 * 1000};  // identity-heartbeat-timeout
  // Told every pass's outcome (the operator's metrics); runs on the collector's thread.
  std::function<void(size_t alive, size_t deleted, size_t failed)> on_pass;
  // The clock (a fake one in tests).
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
};

class IdentityGc {
 public:
  // The stores (synced informers) and the client must outlive the collector.
  IdentityGc(k8s::Client& client, const k8s::Store<k8s::CiliumIdentity>& identities,
             const k8s::Store<k8s::CiliumEndpoint>& endpoints, IdentityGcOptions options);
  ~IdentityGc();  // stops the periodic runs
  IdentityGc(const IdentityGc&) = delete;
  IdentityGc& operator=(const IdentityGc&) = delete;

  struct Pass {
    size_t alive = 0;    // identities referred to by an endpoint
    size_t unused = 0;   // not referred to, kept until the timeout passes
    size_t deleted = 0;  // deleted in this pass
    size_t failed = 0;   // deletions the API server refused (tried again next pass)
  };
  // One pass now.
  Pass runOnce();
  // Runs a pass every interval on a thread of its own.
  void start();

 private:
  k8s::Client& client_;
  const k8s::Store<k8s::CiliumIdentity>& identities_;
  const k8s::Store<k8s::CiliumEndpoint>& endpoints_;
  IdentityGcOptions options_;
  std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> unused_since_;
  Periodic runner_;
};

}  // namespace cilium::op
