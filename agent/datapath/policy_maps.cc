// Kernel policy maps: one LPM trie per endpoint behind cilium_policy_v2.
#include "agent/datapath/policy_maps.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "agent/bpf/map.h"

namespace cilium::datapath {

Result<std::unique_ptr<KernelPolicyMaps>> KernelPolicyMaps::create(int outer_fd,
                                                                   uint32_t inner_max_entries) {
  int dup = ::fcntl(outer_fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return errnoError(errno, "dup cilium_policy_v2 fd");
  UniqueFd fd(dup);
  CILIUM_ASSIGN_OR_RETURN(bpf::MapInfo info, bpf::mapInfo(fd.get()));
  if (info.type != BPF_MAP_TYPE_HASH_OF_MAPS || info.key_size != sizeof(uint32_t))
    return makeError(ErrorCode::kFailedPrecondition, "map {} is not the outer policy map",
                     info.name);
  return std::unique_ptr<KernelPolicyMaps>(new KernelPolicyMaps(std::move(fd), inner_max_entries));
}

Result<UniqueFd> KernelPolicyMaps::createInnerMap(uint16_t endpoint_id, uint32_t max_entries) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  // Map names hold 15 characters.
  std::string name = fmt::format("cil_pol_{:05}", endpoint_id);
  int fd = ::bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, name.c_str(), sizeof(policy_key),
                            sizeof(policy_entry), max_entries, &opts);
  if (fd < 0)
    return errnoError(errno, fmt::format("create policy map of endpoint {}", endpoint_id));
  return UniqueFd(fd);
}

Result<UniqueFd> KernelPolicyMaps::innerMap(uint16_t endpoint_id) const {
  uint32_t key = endpoint_id;
  uint32_t id = 0;
  // Userspace lookups in a map-of-maps return the inner map's id.
  if (::bpf_map_lookup_elem(outer_.get(), &key, &id) != 0) {
    if (errno == ENOENT)
      return makeError(ErrorCode::kNotFound, "endpoint {} has no policy map", endpoint_id);
    return errnoError(errno, fmt::format("look up policy map of endpoint {}", endpoint_id));
  }
  int fd = ::bpf_map_get_fd_by_id(id);
  if (fd < 0) {
    // Replaced and freed between the two calls.
    if (errno == ENOENT)
      return makeError(ErrorCode::kAborted, "policy map of endpoint {} changed", endpoint_id);
    return errnoError(errno, fmt::format("open policy map id {}", id));
  }
  return UniqueFd(fd);
}

static Status writeEntry(int fd, const PolicyEntry& e, uint16_t endpoint_id) {
  PolicyEntry n = normalizePolicyEntry(e);
  if (::bpf_map_update_elem(fd, &n.key, &n.value, BPF_ANY) != 0) {
    if (errno == ENOSPC || errno == E2BIG)
      return makeError(ErrorCode::kResourceExhausted, "policy map of endpoint {} is full",
                       endpoint_id);
    return errnoError(errno, fmt::format("update policy map of endpoint {}", endpoint_id));
  }
  return okStatus();
}

namespace {
Status validateAll(uint16_t endpoint_id, std::span<const PolicyEntry> entries) {
  for (const auto& e : entries) {
    if (Status s = validatePolicyEntry(e); !s.ok())
      return s.error().withContext(fmt::format("policy of endpoint {}", endpoint_id));
  }
  return okStatus();
}
}  // namespace

Status KernelPolicyMaps::replace(uint16_t endpoint_id, std::span<const PolicyEntry> entries) {
  CILIUM_RETURN_IF_ERROR(validateAll(endpoint_id, entries));
  if (entries.size() > inner_max_)
    return makeError(ErrorCode::kResourceExhausted,
                     "policy map of endpoint {} would hold {} entries (max {})", endpoint_id,
                     entries.size(), inner_max_);
  std::lock_guard lock(mu_);
  // The new map is complete before any packet can see it; the old one stays in force until the
  // single outer update below, and is freed by the kernel once no program uses it.
  CILIUM_ASSIGN_OR_RETURN(UniqueFd inner, createInnerMap(endpoint_id, inner_max_));
  for (const auto& e : entries) CILIUM_RETURN_IF_ERROR(writeEntry(inner.get(), e, endpoint_id));
  uint32_t key = endpoint_id;
  int inner_fd = inner.get();
  if (::bpf_map_update_elem(outer_.get(), &key, &inner_fd, BPF_ANY) != 0) {
    if (errno == E2BIG || errno == ENOSPC)
      return makeError(ErrorCode::kResourceExhausted, "cilium_policy_v2 is full (endpoint {})",
                       endpoint_id);
    return errnoError(errno, fmt::format("install policy map of endpoint {}", endpoint_id));
  }
  return okStatus();
}

Status KernelPolicyMaps::update(uint16_t endpoint_id, std::span<const PolicyEntry> upserts,
                                std::span<const policy_key> deletes) {
  CILIUM_RETURN_IF_ERROR(validateAll(endpoint_id, upserts));
  std::lock_guard lock(mu_);
  CILIUM_ASSIGN_OR_RETURN(UniqueFd inner, innerMap(endpoint_id));
  for (const auto& k : deletes) {
    if (::bpf_map_delete_elem(inner.get(), &k) != 0 && errno != ENOENT)
      return errnoError(errno, fmt::format("delete from policy map of endpoint {}", endpoint_id));
  }
  for (const auto& e : upserts) CILIUM_RETURN_IF_ERROR(writeEntry(inner.get(), e, endpoint_id));
  return okStatus();
}

Status KernelPolicyMaps::remove(uint16_t endpoint_id) {
  std::lock_guard lock(mu_);
  uint32_t key = endpoint_id;
  if (::bpf_map_delete_elem(outer_.get(), &key) != 0 && errno != ENOENT)
    return errnoError(errno, fmt::format("remove policy map of endpoint {}", endpoint_id));
  return okStatus();
}

Result<std::vector<PolicyEntry>> KernelPolicyMaps::dump(uint16_t endpoint_id) const {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd inner, innerMap(endpoint_id));
  std::vector<PolicyEntry> out;
  policy_key cur{};
  policy_key next{};
  bool first = true;
  for (uint32_t i = 0; i <= inner_max_ + 1; i++) {
    if (::bpf_map_get_next_key(inner.get(), first ? nullptr : &cur, &next) != 0) {
      if (errno == ENOENT) return out;
      return errnoError(errno, fmt::format("iterate policy map of endpoint {}", endpoint_id));
    }
    first = false;
    cur = next;
    PolicyEntry e{cur, {}};
    if (::bpf_map_lookup_elem(inner.get(), &cur, &e.value) != 0) {
      if (errno == ENOENT) continue;
      return errnoError(errno, fmt::format("read policy map of endpoint {}", endpoint_id));
    }
    out.push_back(e);
  }
  return makeError(ErrorCode::kAborted, "iteration of the policy map of endpoint {} did not end",
                   endpoint_id);
}

Result<std::vector<uint16_t>> KernelPolicyMaps::endpoints() const {
  std::vector<uint16_t> out;
  uint32_t cur = 0;
  uint32_t next = 0;
  bool first = true;
  for (uint32_t i = 0; i <= CILIUM_POLICY_OUTER_SIZE + 1; i++) {
    if (::bpf_map_get_next_key(outer_.get(), first ? nullptr : &cur, &next) != 0) {
      if (errno == ENOENT) {
        std::sort(out.begin(), out.end());  // as the fake: callers diff against their own lists
        return out;
      }
      return errnoError(errno, "iterate cilium_policy_v2");
    }
    first = false;
    cur = next;
    if (next >= 1 && next <= 0xffff) out.push_back(static_cast<uint16_t>(next));
  }
  return makeError(ErrorCode::kAborted, "iteration of cilium_policy_v2 did not end");
}

Result<bool> pinnedPolicyMapCompatible(const std::string& path, uint32_t inner_max_entries) {
  if (::access(path.c_str(), F_OK) != 0) return true;
  CILIUM_ASSIGN_OR_RETURN(UniqueFd outer, bpf::openPinned(path));
  // Key 0 is no endpoint id (ids are 1..65535): a trial insert there tells whether the kernel
  // accepts inner maps of this size, without touching any endpoint's policy.
  CILIUM_ASSIGN_OR_RETURN(UniqueFd probe, KernelPolicyMaps::createInnerMap(0, inner_max_entries));
  uint32_t key = 0;
  int fd = probe.get();
  if (::bpf_map_update_elem(outer.get(), &key, &fd, BPF_ANY) != 0) {
    if (errno == EINVAL) return false;
    return errnoError(errno, "probe pinned " + path);
  }
  ::bpf_map_delete_elem(outer.get(), &key);
  return true;
}

}  // namespace cilium::datapath
