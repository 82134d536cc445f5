// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it, so
// that of several cilium-operator replicas only one acts: the holder renews the Lease every
// retry period; a candidate takes it over once the holder has not renewed it for the lease
// duration, measured on the candidate's own clock from when it last saw the Lease change (no
// clock agreement between replicas is needed). Writes carry the resourceVersion, so of two
// candidates racing for an expired Lease exactly one wins. A leader that cannot renew within
// the renew deadline steps down.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "agent/k8s/client.h"

namespace cilium::op {

struct LeaderElectionOptions {
  std::string namespace_name = "kube-system";
  std::string lease_name = "cilium-operator-resource-lock";  // Cilium's
  std::string identity;                                      // this replica; must be unique
  std::chrono::milliseconds lease_duration{15000};           // leader-election-lease-duration
  std::chrono::milliseconds renew_deadline{10000};           // leader-election-renew-deadline
  std::chrono::milliseconds retry_period{2000};              // leader-election-retry-period
};

class LeaderElector {
 public:
  // on_started runs (on the elector's thread) when this replica becomes leader, on_stopped when
  // it stops being leader (renewal failed, or stop() while leading).
  LeaderElector(k8s::Client& client, LeaderElectionOptions options,
                std::function<void()> on_started, std::function<void()> on_stopped);
  ~LeaderElector();  // stop()
  void start();
  // Stops trying; a leader steps down (on_stopped) and releases the Lease so another replica
  // takes over at once.
  void stop();
  bool leading() const { return leading_.load(); }

 private:
  void run();
  // One attempt to acquire or renew: true when this replica holds the Lease afterwards.
  bool tryAcquireOrRenew();
  void release();

  k8s::Client& client_;
  LeaderElectionOptions options_;
  std::function<void()> on_started_, on_stopped_;
  std::atomic<bool> leading_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
  // The Lease as last seen and when this replica saw it change.
  std::string observed_rv_;
  std::chrono::steady_clock::time_point observed_at_{};
};

}  // namespace cilium::op
