// WorkQueue: the worker loop and its per-key backoff.
#include "operator/work_queue.h"

#include <algorithm>

namespace cilium::op {

void WorkQueue::start(Reconcile reconcile) {
  reconcile_ = std::move(reconcile);
  worker_ = std::thread([this] { run(); });
}

void WorkQueue::add(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    if (!queued_.insert(key).second) return;
    queue_.push_back(key);
  }
  cv_.notify_all();
}

void WorkQueue::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void WorkQueue::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // The first key whose retry time has come; else wait for the earliest one (or a new key).
    auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    auto it = queue_.begin();
    for (; it != queue_.end(); ++it) {
      auto r = retry_at_.find(*it);
      if (r == retry_at_.end() || r->second <= now) break;
      next = std::min(next, r->second);
    }
    if (it == queue_.end()) {
      if (next == std::chrono::steady_clock::time_point::max())
        cv_.wait(lock);
      else
        cv_.wait_until(lock, next);
      continue;
    }
    std::string key = *it;
    queue_.erase(it);
    queued_.erase(key);
    lock.unlock();
    bool done = reconcile_(key);
    lock.lock();
    if (done) {
      retry_at_.erase(key);
      backoff_.erase(key);
      continue;
    }
    auto& b = backoff_[key];
    b = b.count() == 0 ? retry_min_ : std::min(b * 2, retry_max_);
    retry_at_[key] = std::chrono::steady_clock::now() + b;
    if (queued_.insert(key).second) queue_.push_back(key);
  }
}

}  // namespace cilium::op
