#include "agent/datapath/fake_maps.h"

#include <cstring>

namespace cilium::datapath {

std::vector<uint8_t> FakePolicyMaps::keyBytes(const policy_key& k) {
  std::vector<uint8_t> b(sizeof(k));
  std::memcpy(b.data(), &k, sizeof(k));
  return b;
}

Status FakePolicyMaps::replace(uint16_t endpoint_id, std::span<const PolicyEntry> entries) {
  Inner inner;
  for (const auto& e : entries) {
    CILIUM_RETURN_IF_ERROR(validatePolicyEntry(e));
    inner[keyBytes(e.key)] = normalizePolicyEntry(e);
  }
  if (inner.size() > max_entries_)
    return makeError(ErrorCode::kResourceExhausted,
                     "policy map of endpoint {} would hold {} entries (max {})", endpoint_id,
                     inner.size(), max_entries_);
  std::lock_guard lock(mu_);
  maps_[endpoint_id] = std::move(inner);
  replacements_++;
  return okStatus();
}

Status FakePolicyMaps::update(uint16_t endpoint_id, std::span<const PolicyEntry> upserts,
                              std::span<const policy_key> deletes) {
  for (const auto& e : upserts) CILIUM_RETURN_IF_ERROR(validatePolicyEntry(e));
  std::lock_guard lock(mu_);
  auto it = maps_.find(endpoint_id);
  if (it == maps_.end())
    return makeError(ErrorCode::kNotFound, "endpoint {} has no policy map", endpoint_id);
  for (const auto& k : deletes) it->second.erase(keyBytes(k));
  for (const auto& e : upserts) {
    if (it->second.size() >= max_entries_ && !it->second.count(keyBytes(e.key)))
      return makeError(ErrorCode::kResourceExhausted, "policy map of endpoint {} is full",
                       endpoint_id);
    it->second[keyBytes(e.key)] = normalizePolicyEntry(e);
  }
  return okStatus();
}

Status FakePolicyMaps::remove(uint16_t endpoint_id) {
  std::lock_guard lock(mu_);
  maps_.erase(endpoint_id);
  return okStatus();
}

Result<std::vector<PolicyEntry>> FakePolicyMaps::dump(uint16_t endpoint_id) const {
  std::lock_guard lock(mu_);
  auto it = maps_.find(endpoint_id);
  if (it == maps_.end())
    return makeError(ErrorCode::kNotFound, "endpoint {} has no policy map", endpoint_id);
  std::vector<PolicyEntry> out;
  for (const auto& [k, e] : it->second) out.push_back(e);
  return out;
}

Result<std::vector<uint16_t>> FakePolicyMaps::endpoints() const {
  std::lock_guard lock(mu_);
  std::vector<uint16_t> out;
  for (const auto& [id, m] : maps_) out.push_back(id);
  return out;
}

uint64_t FakePolicyMaps::replacements() const {
  std::lock_guard lock(mu_);
  return replacements_;
}

}  // namespace cilium::datapath
