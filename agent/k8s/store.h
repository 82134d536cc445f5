// Typed object stores with add/update/delete handlers: what informers and the manifests source
// fill and what policy, identity and service code read. Header-only (a template).
//
// Threading: reads are thread-safe. Each store has one writer (its informer or the manifests
// source); handlers run on the writer's thread, one call at a time, in the order of the changes,
// without the store's lock held (they may read the store).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/k8s/resources.h"

namespace cilium::k8s {

template <typename T>
struct Handlers {
  std::function<void(const T&)> on_add;
  std::function<void(const T& old_obj, const T& new_obj)> on_update;
  // After a relist, objects gone meanwhile arrive here with their last known state.
  std::function<void(const T&)> on_delete;
};

template <typename T>
class Store {
 public:
  using HandlerId = uint64_t;

  std::optional<T> get(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<T> get(std::string_view ns, std::string_view name) const {
    return get(objectKey(ns, name));
  }
  std::vector<T> list() const {
    std::lock_guard lock(mu_);
    std::vector<T> out;
    out.reserve(objects_.size());
    for (const auto& [k, v] : objects_) out.push_back(v);
    return out;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return objects_.size();
  }
  // True once the first full state (list, or manifests scan) has been stored and its changes
  // told to the handlers registered at that time.
  bool hasSynced() const {
    std::lock_guard lock(mu_);
    return synced_;
  }
  // The object once it is stored, waiting up to `timeout` for it; nullopt on timeout.
  std::optional<T> waitFor(const std::string& key, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    std::optional<T> found;
    changed_cv_.wait_for(lock, timeout, [&] {
      auto it = objects_.find(key);
      if (it != objects_.end()) found = it->second;
      return found.has_value();
    });
    return found;
  }
  bool waitForSync(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return synced_cv_.wait_for(lock, timeout, [&] { return synced_; });
  }

  // Registers handlers; `on_add` first hears every object already stored (as client-go's
  // late-registered handlers do). Must not be called from inside a handler.
  HandlerId addHandlers(Handlers<T> h) {
    std::lock_guard dlock(deliver_mu_);
    HandlerId id = next_id_++;
    if (h.on_add) {
      for (const auto& obj : list()) h.on_add(obj);
    }
    handlers_[id] = std::move(h);
    return id;
  }
  void removeHandlers(HandlerId id) {
    std::lock_guard dlock(deliver_mu_);
    handlers_.erase(id);
  }

  // --- Writer side ------------------------------------------------------------------------------

  // Adds or replaces one object; tells handlers unless it is unchanged.
  void upsert(T obj) {
    std::string key = objectKey(obj.meta.namespace_name, obj.meta.name);
    std::optional<T> old;
    {
      std::lock_guard lock(mu_);
      auto it = objects_.find(key);
      if (it != objects_.end()) {
        if (it->second == obj) return;
        old = std::move(it->second);
        it->second = obj;
      } else {
        objects_.emplace(key, obj);
      }
    }
    changed_cv_.notify_all();
    deliver(old ? Change{Change::kUpdate, std::move(*old), std::move(obj)}
                : Change{Change::kAdd, {}, std::move(obj)});
  }
  // Removes one object (the DELETED event carries its last state; the stored one is reported).
  void erase(const std::string& key) {
    std::optional<T> old;
    {
      std::lock_guard lock(mu_);
      auto it = objects_.find(key);
      if (it == objects_.end()) return;
      old = std::move(it->second);
      objects_.erase(it);
    }
    deliver(Change{Change::kDelete, std::move(*old), {}});
  }
  // Replaces the whole content: adds, updates and deletions (for objects missing from
  // `objects`) are told to handlers; marks the store synced.
  void replace(std::vector<T> objects) {
    std::map<std::string, T> next;
    for (auto& o : objects) {
      std::string key = objectKey(o.meta.namespace_name, o.meta.name);
      next.insert_or_assign(std::move(key), std::move(o));
    }
    std::vector<Change> changes;
    {
      std::lock_guard lock(mu_);
      for (auto& [k, v] : objects_) {
        auto it = next.find(k);
        if (it == next.end())
          changes.push_back(Change{Change::kDelete, std::move(v), {}});
        else if (!(it->second == v))
          changes.push_back(Change{Change::kUpdate, std::move(v), it->second});
      }
      for (const auto& [k, v] : next)
        if (!objects_.count(k)) changes.push_back(Change{Change::kAdd, {}, v});
      objects_ = std::move(next);
    }
    changed_cv_.notify_all();
    for (auto& c : changes) deliver(std::move(c));
    markSynced();
  }
  void markSynced() {
    {
      std::lock_guard lock(mu_);
      synced_ = true;
    }
    synced_cv_.notify_all();
  }

 private:
  struct Change {
    enum Kind { kAdd, kUpdate, kDelete } kind;
    T old_obj;
    T new_obj;
  };
  void deliver(Change c) {
    std::lock_guard dlock(deliver_mu_);
    for (auto& [id, h] : handlers_) {
      switch (c.kind) {
        case Change::kAdd:
          if (h.on_add) h.on_add(c.new_obj);
          break;
        case Change::kUpdate:
          if (h.on_update) h.on_update(c.old_obj, c.new_obj);
          break;
        case Change::kDelete:
          if (h.on_delete) h.on_delete(c.old_obj);
          break;
      }
    }
  }

  mutable std::mutex mu_;
  mutable std::condition_variable synced_cv_;
  mutable std::condition_variable changed_cv_;  // an object was added or replaced
  std::map<std::string, T> objects_;
  bool synced_ = false;

  std::mutex deliver_mu_;
  std::map<HandlerId, Handlers<T>> handlers_;
  HandlerId next_id_ = 1;
};

}  // namespace cilium::k8s
