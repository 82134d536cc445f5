// A keyed work queue with one worker thread, as client-go's rate-limited queue: adding a key that
// is already waiting merges with it; a reconcile that fails is retried with per-key exponential
// backoff (retry_min, doubling up to retry_max); a success forgets the key's backoff.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace cilium::op {

class WorkQueue {
 public:
  // Returns false when the key should be retried later.
  using Reconcile = std::function<bool(const std::string& key)>;

  WorkQueue(std::chrono::milliseconds retry_min, std::chrono::milliseconds retry_max)
      : retry_min_(retry_min), retry_max_(retry_max) {}
  ~WorkQueue() { stop(); }
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Starts the worker; keys added before are reconciled once it runs.
  void start(Reconcile reconcile);
  void add(const std::string& key);
  // Stops the worker after the reconcile in progress, if any. Idempotent.
  void stop();

 private:
  void run();

  const std::chrono::milliseconds retry_min_, retry_max_;
  Reconcile reconcile_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;
  std::map<std::string, std::chrono::steady_clock::time_point> retry_at_;
  std::map<std::string, std::chrono::milliseconds> backoff_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace cilium::op
