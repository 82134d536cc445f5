#include "agent/datapath/fake_maps.h"

#include <cstring>

#include "agent/datapath/policy_patch.h"

namespace cilium::datapath {

std::vector<uint8_t> FakePolicyMaps::keyBytes(const policy_key& k) {
  std::vector<uint8_t> b(sizeof(k));
  std::memcpy(b.data(), &k, sizeof(k));
  return b;
}

Status FakePolicyMaps::replace(uint16_t endpoint_id, std::span<const PolicyEntry> entries) {
  PolicyReplacement one{endpoint_id, entries};
  return replaceMany(std::span(&one, 1)).front();
}

Status FakePolicyMaps::replaceLocked(uint16_t endpoint_id, std::span<const PolicyEntry> entries,
                                     bool* swap) {
  Inner wanted;
  for (const auto& e : entries) {
    CILIUM_RETURN_IF_ERROR(validatePolicyEntry(e));
    wanted[keyBytes(e.key)] = normalizePolicyEntry(e);
  }
  if (wanted.size() > max_entries_)
    return makeError(ErrorCode::kResourceExhausted,
                     "policy map of endpoint {} would hold {} entries (max {})", endpoint_id,
                     wanted.size(), max_entries_);
  replacements_++;
  auto it = maps_.find(endpoint_id);
  *swap = it == maps_.end();
  if (*swap) return okStatus();
  std::vector<PolicyEntry> current;
  for (const auto& [k, e] : it->second.entries) current.push_back(e);
  PolicyPatch plan = planPolicyPatch(current, entries, max_entries_);
  if (plan.swap) {
    *swap = true;
    return okStatus();
  }
  for (const auto& op : plan.ops) {
    if (op.remove)
      it->second.entries.erase(keyBytes(op.entry.key));
    else
      it->second.entries[keyBytes(op.entry.key)] = op.entry;
  }
  in_place_ops_ += plan.ops.size();
  (plan.ops.empty() ? counters_.unchanged : counters_.patched)++;
  return okStatus();
}

std::vector<Status> FakePolicyMaps::replaceMany(std::span<const PolicyReplacement> changes) {
  std::vector<Status> out;
  std::lock_guard lock(mu_);
  bool any_swap = false;
  for (const auto& c : changes) {
    bool swap = false;
    out.push_back(replaceLocked(c.endpoint_id, c.entries, &swap));
    if (!out.back().ok() || !swap) continue;
    // A new inner map with the complete set, installed below with the others.
    Slot& slot = maps_[c.endpoint_id];
    slot.id = next_id_++;
    slot.entries.clear();
    for (const auto& e : c.entries) slot.entries[keyBytes(e.key)] = normalizePolicyEntry(e);
    counters_.swapped++;
    any_swap = true;
  }
  if (any_swap) counters_.outer_writes++;
  return out;
}

Status FakePolicyMaps::update(uint16_t endpoint_id, std::span<const PolicyEntry> upserts,
                              std::span<const policy_key> deletes) {
  for (const auto& e : upserts) CILIUM_RETURN_IF_ERROR(validatePolicyEntry(e));
  std::lock_guard lock(mu_);
  auto it = maps_.find(endpoint_id);
  if (it == maps_.end())
    return makeError(ErrorCode::kNotFound, "endpoint {} has no policy map", endpoint_id);
  Inner& inner = it->second.entries;
  for (const auto& k : deletes) inner.erase(keyBytes(k));
  for (const auto& e : upserts) {
    if (inner.size() >= max_entries_ && !inner.count(keyBytes(e.key)))
      return makeError(ErrorCode::kResourceExhausted, "policy map of endpoint {} is full",
                       endpoint_id);
    inner[keyBytes(e.key)] = normalizePolicyEntry(e);
  }
  return okStatus();
}

Status FakePolicyMaps::remove(uint16_t endpoint_id) {
  std::lock_guard lock(mu_);
  maps_.erase(endpoint_id);
  counters_.outer_writes++;
  return okStatus();
}

Status FakePolicyMaps::removeMany(std::span<const uint16_t> endpoint_ids) {
  std::lock_guard lock(mu_);
  for (uint16_t id : endpoint_ids) maps_.erase(id);
  if (!endpoint_ids.empty()) counters_.outer_writes++;
  return okStatus();
}

Result<std::vector<PolicyEntry>> FakePolicyMaps::dump(uint16_t endpoint_id) const {
  std::lock_guard lock(mu_);
  auto it = maps_.find(endpoint_id);
  if (it == maps_.end())
    return makeError(ErrorCode::kNotFound, "endpoint {} has no policy map", endpoint_id);
  std::vector<PolicyEntry> out;
  for (const auto& [k, e] : it->second.entries) out.push_back(e);
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

PolicyMapCounters FakePolicyMaps::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

uint64_t FakePolicyMaps::innerMapId(uint16_t endpoint_id) const {
  std::lock_guard lock(mu_);
  auto it = maps_.find(endpoint_id);
  return it == maps_.end() ? 0 : it->second.id;
}

uint64_t FakePolicyMaps::inPlaceOps() const {
  std::lock_guard lock(mu_);
  return in_place_ops_;
}

}  // namespace cilium::datapath
