// Kernel policy maps: one LPM trie per endpoint behind cilium_policy_v2.
#include "agent/datapath/policy_maps.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include "agent/bpf/map.h"
#include "agent/common/log.h"
#include "agent/datapath/policy_patch.h"

namespace cilium::datapath {
namespace {
auto log() {
  static auto l = logger("datapath");
  return l;
}
}  // namespace

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
  PolicyReplacement one{endpoint_id, entries};
  return replaceMany(std::span(&one, 1)).front();
}

Result<bool> KernelPolicyMaps::patchLocked(int inner_fd, uint16_t endpoint_id,
                                           std::span<const PolicyEntry> entries) {
  CILIUM_ASSIGN_OR_RETURN(bpf::MapInfo info, bpf::mapInfo(inner_fd));
  if (info.max_entries != inner_max_) return false;  // the swap resizes it
  CILIUM_ASSIGN_OR_RETURN(auto current, dumpInner(inner_fd, endpoint_id));
  PolicyPatch plan = planPolicyPatch(current, entries, info.max_entries);
  if (plan.swap) {
    log()->debug("policy map swap endpoint={} reason={}", endpoint_id, plan.swap_reason);
    return false;
  }
  for (const auto& op : plan.ops) {
    if (!op.remove) {
      CILIUM_RETURN_IF_ERROR(writeEntry(inner_fd, op.entry, endpoint_id));
    } else if (::bpf_map_delete_elem(inner_fd, &op.entry.key) != 0 && errno != ENOENT) {
      return errnoError(errno, fmt::format("delete from policy map of endpoint {}", endpoint_id));
    }
  }
  (plan.ops.empty() ? counters_.unchanged : counters_.patched)++;
  return true;
}

std::vector<Status> KernelPolicyMaps::replaceMany(std::span<const PolicyReplacement> changes) {
  std::vector<Status> results(changes.size(), okStatus());
  std::lock_guard lock(mu_);
  std::vector<Swap> swaps;
  // Every pending swap holds an open inner map: install in batches that leave descriptors to
  // spare (each batch is one grace period).
  rlimit nofile{};
  size_t batch = 256;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0)
    batch =
        nofile.rlim_cur == RLIM_INFINITY ? 4096 : std::clamp<size_t>(nofile.rlim_cur / 4, 16, 4096);
  for (size_t i = 0; i < changes.size(); i++) {
    uint16_t id = changes[i].endpoint_id;
    auto entries = changes[i].entries;
    if (Status s = validateAll(id, entries); !s.ok()) {
      results[i] = s;
      continue;
    }
    if (entries.size() > inner_max_) {
      results[i] = makeError(ErrorCode::kResourceExhausted,
                             "policy map of endpoint {} would hold {} entries (max {})", id,
                             entries.size(), inner_max_);
      continue;
    }
    auto current = innerMap(id);
    if (current.ok()) {
      auto patched = patchLocked(current->get(), id, entries);
      if (patched.ok() && *patched) continue;
      // Whatever a failed patch left is between the two sets; the swap below ends it.
      if (!patched.ok())
        log()->warn("in-place policy update failed endpoint={} error={}; swapping", id,
                    patched.error().message());
    } else if (current.error().code() != ErrorCode::kNotFound &&
               current.error().code() != ErrorCode::kAborted) {
      results[i] = current.error();
      continue;
    }
    // The new map is complete before any packet can see it; the old one stays in force until
    // the outer update, and is freed by the kernel once no program uses it.
    auto inner = createInnerMap(id, inner_max_);
    Status filled = inner.ok() ? okStatus() : Status(inner.error());
    for (size_t k = 0; filled.ok() && k < entries.size(); k++)
      filled = writeEntry(inner->get(), entries[k], id);
    if (!filled.ok()) {
      results[i] = filled;
      continue;
    }
    swaps.push_back(Swap{i, id, std::move(*inner)});
    if (swaps.size() >= batch) installLocked(swaps, results);
  }
  installLocked(swaps, results);
  return results;
}

void KernelPolicyMaps::installLocked(std::vector<Swap>& swaps, std::vector<Status>& results) {
  auto failed = [&](const Swap& s, int err) {
    if (err == E2BIG || err == ENOSPC)
      results[s.index] =
          makeError(ErrorCode::kResourceExhausted, "cilium_policy_v2 is full (endpoint {})", s.key);
    else
      results[s.index] = errnoError(err, fmt::format("install policy map of endpoint {}", s.key));
  };
  size_t next = 0;
  while (next < swaps.size()) {
    std::vector<uint32_t> keys, fds;
    for (size_t k = next; k < swaps.size(); k++) {
      keys.push_back(swaps[k].key);
      fds.push_back(static_cast<uint32_t>(swaps[k].inner.get()));
    }
    auto count = static_cast<uint32_t>(keys.size());
    int rc = count == 1
                 ? ::bpf_map_update_elem(outer_.get(), keys.data(), fds.data(), BPF_ANY)
                 : ::bpf_map_update_batch(outer_.get(), keys.data(), fds.data(), &count, nullptr);
    int err = errno;
    counters_.outer_writes++;
    if (rc == 0) {
      counters_.swapped += keys.size();
      break;
    }
    if (keys.size() == 1) count = 0;
    // The first `count` went in; the one after them failed; the rest were not tried.
    counters_.swapped += count;
    next += count;
    if (next >= swaps.size()) break;
    failed(swaps[next], err);
    next++;
  }
  swaps.clear();
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
  counters_.outer_writes++;
  if (::bpf_map_delete_elem(outer_.get(), &key) != 0 && errno != ENOENT)
    return errnoError(errno, fmt::format("remove policy map of endpoint {}", endpoint_id));
  return okStatus();
}

Status KernelPolicyMaps::removeMany(std::span<const uint16_t> endpoint_ids) {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> keys(endpoint_ids.begin(), endpoint_ids.end());
  size_t next = 0;
  while (next < keys.size()) {
    auto count = static_cast<uint32_t>(keys.size() - next);
    int rc = ::bpf_map_delete_batch(outer_.get(), keys.data() + next, &count, nullptr);
    int err = errno;
    counters_.outer_writes++;
    if (rc == 0) break;
    // The first `count` are gone; the next one failed (absent is fine).
    next += count;
    if (err != ENOENT)
      return errnoError(err, fmt::format("remove policy map of endpoint {}", keys[next]));
    next++;
  }
  return okStatus();
}

Result<std::vector<PolicyEntry>> KernelPolicyMaps::dump(uint16_t endpoint_id) const {
  CILIUM_ASSIGN_OR_RETURN(UniqueFd inner, innerMap(endpoint_id));
  return dumpInner(inner.get(), endpoint_id);
}

Result<std::vector<PolicyEntry>> KernelPolicyMaps::dumpInner(int inner_fd,
                                                             uint16_t endpoint_id) const {
  std::vector<PolicyEntry> out;
  policy_key cur{};
  policy_key next{};
  bool first = true;
  for (uint32_t i = 0; i <= inner_max_ + 1; i++) {
    if (::bpf_map_get_next_key(inner_fd, first ? nullptr : &cur, &next) != 0) {
      if (errno == ENOENT) return out;
      return errnoError(errno, fmt::format("iterate policy map of endpoint {}", endpoint_id));
    }
    first = false;
    cur = next;
    PolicyEntry e{cur, {}};
    if (::bpf_map_lookup_elem(inner_fd, &cur, &e.value) != 0) {
      if (errno == ENOENT) continue;
      return errnoError(errno, fmt::format("read policy map of endpoint {}", endpoint_id));
    }
    out.push_back(e);
  }
  return makeError(ErrorCode::kAborted, "iteration of the policy map of endpoint {} did not end",
                   endpoint_id);
}

PolicyMapCounters KernelPolicyMaps::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
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
