// An in-memory Map<K,V> with the kernel's semantics for flags, capacity and absent keys, so that
// control-plane code runs in unit tests without root.
#pragma once

#include <map>
#include <mutex>
#include <vector>

#include "agent/bpf/map.h"

namespace cilium::bpf {

template <typename K, typename V>
class FakeMap final : public Map<K, V> {
 public:
  explicit FakeMap(std::string name, uint32_t max_entries = 1024)
      : name_(std::move(name)), max_entries_(max_entries) {}

  const std::string& name() const override { return name_; }
  uint32_t maxEntries() const override { return max_entries_; }

  Result<std::optional<V>> lookup(const K& key) const override {
    std::lock_guard lock(mu_);
    auto it = entries_.find(bytesOf(key));
    if (it == entries_.end()) return std::optional<V>();
    return std::optional<V>(it->second);
  }

  Status update(const K& key, const V& value, UpdateFlag flag = UpdateFlag::kAny) override {
    std::lock_guard lock(mu_);
    auto k = bytesOf(key);
    auto it = entries_.find(k);
    if (flag == UpdateFlag::kNoExist && it != entries_.end())
      return makeError(ErrorCode::kAlreadyExists, "{}: key exists", name_);
    if (flag == UpdateFlag::kExist && it == entries_.end())
      return makeError(ErrorCode::kNotFound, "{}: key absent", name_);
    if (it == entries_.end() && entries_.size() >= max_entries_)
      return makeError(ErrorCode::kResourceExhausted, "map {} is full", name_);
    entries_[k] = value;
    updates_++;
    return okStatus();
  }

  Result<bool> remove(const K& key) override {
    std::lock_guard lock(mu_);
    return entries_.erase(bytesOf(key)) > 0;
  }

  Status forEach(const std::function<bool(const K&, const V&)>& fn) const override {
    std::vector<std::pair<K, V>> snapshot;
    {
      std::lock_guard lock(mu_);
      for (const auto& [k, v] : entries_) {
        K key;
        std::memcpy(&key, k.data(), sizeof(K));
        snapshot.emplace_back(key, v);
      }
    }
    for (const auto& [k, v] : snapshot)
      if (!fn(k, v)) break;
    return okStatus();
  }

  // Number of successful updates, for tests that check how much was written.
  uint64_t updates() const {
    std::lock_guard lock(mu_);
    return updates_;
  }

 private:
  // Keys compare by their bytes, as the kernel does (padding included: callers must zero it).
  static std::vector<uint8_t> bytesOf(const K& key) {
    std::vector<uint8_t> b(sizeof(K));
    std::memcpy(b.data(), &key, sizeof(K));
    return b;
  }

  std::string name_;
  uint32_t max_entries_;
  mutable std::mutex mu_;
  std::map<std::vector<uint8_t>, V> entries_;
  uint64_t updates_ = 0;
};

}  // namespace cilium::bpf
