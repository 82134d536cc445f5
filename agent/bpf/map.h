// Typed access to BPF maps: the Map<K,V> interface that control-plane code depends on, and its
// kernel implementation. FakeMap (fake_map.h) is the in-memory implementation for tests.
#pragma once

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/fd.h"

namespace cilium::bpf {

enum class UpdateFlag : uint64_t {
  kAny = BPF_ANY,          // create or replace
  kNoExist = BPF_NOEXIST,  // create only
  kExist = BPF_EXIST,      // replace only
};

// Values of per-CPU maps: one T per possible CPU.
template <typename T>
struct PerCpu {
  std::vector<T> values;

  // Sums the per-CPU values with `add(acc, v)`.
  template <typename Add>
  T sum(Add add) const {
    T acc{};
    for (const auto& v : values) add(acc, v);
    return acc;
  }
};

// A typed BPF map. Implementations: KernelMap (a real map), FakeMap (memory).
// Errors: lookups of absent keys are not errors (nullopt / false); a full map on insert is
// kResourceExhausted. Thread-safety: as the kernel's; no locking here.
template <typename K, typename V>
class Map {
 public:
  virtual ~Map() = default;

  virtual const std::string& name() const = 0;
  virtual uint32_t maxEntries() const = 0;

  virtual Result<std::optional<V>> lookup(const K& key) const = 0;
  virtual Status update(const K& key, const V& value, UpdateFlag flag = UpdateFlag::kAny) = 0;
  // Removes `key`; returns whether it was present.
  virtual Result<bool> remove(const K& key) = 0;
  // Visits entries until `fn` returns false. Concurrent changes may or may not be seen.
  virtual Status forEach(const std::function<bool(const K&, const V&)>& fn) const = 0;

  virtual Status updateBatch(std::span<const K> keys, std::span<const V> values) {
    if (keys.size() != values.size())
      return Error(ErrorCode::kInvalidArgument, "updateBatch: key and value counts differ");
    for (size_t i = 0; i < keys.size(); i++) CILIUM_RETURN_IF_ERROR(update(keys[i], values[i]));
    return okStatus();
  }

  Result<size_t> count() const {
    size_t n = 0;
    CILIUM_RETURN_IF_ERROR(forEach([&](const K&, const V&) {
      n++;
      return true;
    }));
    return n;
  }
};

// How values travel to and from the kernel: plain structs as they are; per-CPU values as an array
// of 8-byte-aligned slots, one per possible CPU.
template <typename V>
struct ValueCodec {
  static_assert(std::is_trivially_copyable_v<V>, "BPF map values must be trivially copyable");
  static size_t bufferSize(size_t /*ncpu*/) { return sizeof(V); }
  static size_t kernelValueSize() { return sizeof(V); }
  static void encode(const V& v, uint8_t* buf, size_t /*ncpu*/) { std::memcpy(buf, &v, sizeof(V)); }
  static V decode(const uint8_t* buf, size_t /*ncpu*/) {
    V v;
    std::memcpy(&v, buf, sizeof(V));
    return v;
  }
};

template <typename T>
struct ValueCodec<PerCpu<T>> {
  static_assert(std::is_trivially_copyable_v<T>);
  static constexpr size_t kStride = (sizeof(T) + 7) & ~size_t{7};
  static size_t bufferSize(size_t ncpu) { return kStride * ncpu; }
  static size_t kernelValueSize() { return sizeof(T); }
  static void encode(const PerCpu<T>& v, uint8_t* buf, size_t ncpu) {
    std::memset(buf, 0, bufferSize(ncpu));
    for (size_t i = 0; i < ncpu && i < v.values.size(); i++)
      std::memcpy(buf + i * kStride, &v.values[i], sizeof(T));
  }
  static PerCpu<T> decode(const uint8_t* buf, size_t ncpu) {
    PerCpu<T> out;
    out.values.resize(ncpu);
    for (size_t i = 0; i < ncpu; i++) std::memcpy(&out.values[i], buf + i * kStride, sizeof(T));
    return out;
  }
};

// Facts about a kernel map read from its fd.
struct MapInfo {
  std::string name;
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;
  uint32_t id = 0;
};

Result<MapInfo> mapInfo(int fd);
// The number of possible CPUs, as per-CPU maps size their values.
size_t possibleCpus();

// Opens a pinned object (map, program or link) by path.
Result<UniqueFd> openPinned(const std::string& path);

// A kernel map owned through its fd. Construction checks that the kernel's key and value sizes
// match K and V, so a layout drift between bpf/abi/ and the kernel is caught on open.
template <typename K, typename V>
class KernelMap final : public Map<K, V> {
 public:
  static_assert(std::is_trivially_copyable_v<K>, "BPF map keys must be trivially copyable");

  // `full_name`: the map's name as the object file or the pin has it; the kernel keeps only the
  // first 15 characters (BPF_OBJ_NAME_LEN), so a longer name it starts with replaces the kernel's.
  static Result<std::unique_ptr<KernelMap>> fromFd(UniqueFd fd, std::string_view full_name = {}) {
    CILIUM_ASSIGN_OR_RETURN(MapInfo info, mapInfo(fd.get()));
    if (full_name.size() > info.name.size() && full_name.starts_with(info.name))
      info.name = std::string(full_name);
    if (info.key_size != sizeof(K) || info.value_size != ValueCodec<V>::kernelValueSize())
      return makeError(ErrorCode::kFailedPrecondition,
                       "map {}: kernel key/value sizes {}/{} differ from the agent's {}/{}",
                       info.name, info.key_size, info.value_size, sizeof(K),
                       ValueCodec<V>::kernelValueSize());
    return std::unique_ptr<KernelMap>(new KernelMap(std::move(fd), std::move(info)));
  }

  // Opens a pinned map; the returned object does not keep the pin alive or remove it.
  static Result<std::unique_ptr<KernelMap>> fromPinned(const std::string& path) {
    CILIUM_ASSIGN_OR_RETURN(UniqueFd fd, openPinned(path));
    return fromFd(std::move(fd), std::string_view(path).substr(path.rfind('/') + 1));
  }

  // Shares a map that someone else (a skeleton) holds; this object gets its own fd.
  static Result<std::unique_ptr<KernelMap>> fromBorrowedFd(int fd,
                                                           std::string_view full_name = {}) {
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return errnoError(errno, "dup map fd");
    return fromFd(UniqueFd(dup), full_name);
  }

  const std::string& name() const override { return info_.name; }
  uint32_t maxEntries() const override { return info_.max_entries; }
  const MapInfo& info() const { return info_; }
  int fd() const { return fd_.get(); }

  Result<std::optional<V>> lookup(const K& key) const override {
    std::vector<uint8_t> buf(ValueCodec<V>::bufferSize(ncpu_));
    if (::bpf_map_lookup_elem(fd_.get(), &key, buf.data()) != 0) {
      if (errno == ENOENT) return std::optional<V>();
      return errnoError(errno, "lookup in " + info_.name);
    }
    return std::optional<V>(ValueCodec<V>::decode(buf.data(), ncpu_));
  }

  Status update(const K& key, const V& value, UpdateFlag flag = UpdateFlag::kAny) override {
    std::vector<uint8_t> buf(ValueCodec<V>::bufferSize(ncpu_));
    ValueCodec<V>::encode(value, buf.data(), ncpu_);
    if (::bpf_map_update_elem(fd_.get(), &key, buf.data(), static_cast<uint64_t>(flag)) != 0) {
      if (errno == E2BIG)
        return makeError(ErrorCode::kResourceExhausted, "map {} is full", info_.name);
      return errnoError(errno, "update in " + info_.name);
    }
    return okStatus();
  }

  Result<bool> remove(const K& key) override {
    if (::bpf_map_delete_elem(fd_.get(), &key) != 0) {
      if (errno == ENOENT) return false;
      return errnoError(errno, "delete in " + info_.name);
    }
    return true;
  }

  // Reads the map in batches (BPF_MAP_LOOKUP_BATCH: one syscall per few thousand entries
  // instead of two per entry); map types without batch lookups are walked key by key.
  Status forEach(const std::function<bool(const K&, const V&)>& fn) const override {
    if (batch_lookup_.load(std::memory_order_relaxed)) {
      auto done = forEachBatched(fn);
      if (done.ok()) return okStatus();
      if (done.error().code() != ErrorCode::kUnimplemented) return done.error();
      batch_lookup_.store(false, std::memory_order_relaxed);
    }
    return forEachByKey(fn);
  }

 private:
  static constexpr uint32_t kBatchEntries = 4096;

  // kUnimplemented when the map type has no batch lookup (before anything was visited).
  Status forEachBatched(const std::function<bool(const K&, const V&)>& fn) const {
    const size_t vsize = ValueCodec<V>::bufferSize(ncpu_);
    uint32_t room = std::min<uint32_t>(kBatchEntries, std::max<uint32_t>(info_.max_entries, 1));
    std::vector<K> keys(room);
    std::vector<uint8_t> vals(vsize * room);
    // The resume token: a bucket index for hash maps, a key for arrays.
    alignas(8) uint8_t token[std::max<size_t>(sizeof(K), 8)] = {};
    alignas(8) uint8_t next[sizeof(token)] = {};
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
      uint32_t n = room;
      int rc = ::bpf_map_lookup_batch(fd_.get(), first ? nullptr : token, next, keys.data(),
                                      vals.data(), &n, &opts);
      int err = rc != 0 ? errno : 0;
      if (rc != 0 && err != ENOENT) {
        // ENOTSUPP (524, the kernel's own) for map types without batch operations.
        if (first && (err == EINVAL || err == 524 || err == EOPNOTSUPP))
          return Error(ErrorCode::kUnimplemented, "no batch lookup");
        if (err == ENOSPC && room < (1u << 20)) {
          // A hash bucket holds more entries than the buffer: retry the same batch bigger.
          room *= 2;
          keys.resize(room);
          vals.resize(vsize * room);
          continue;
        }
        return errnoError(err, "batch lookup in " + info_.name);
      }
      for (uint32_t i = 0; i < n; i++)
        if (!fn(keys[i], ValueCodec<V>::decode(vals.data() + i * vsize, ncpu_))) return okStatus();
      if (err == ENOENT) return okStatus();  // that was the last batch
      std::memcpy(token, next, sizeof(token));
      first = false;
    }
  }

  Status forEachByKey(const std::function<bool(const K&, const V&)>& fn) const {
    std::vector<uint8_t> buf(ValueCodec<V>::bufferSize(ncpu_));
    K cur{};
    K next{};
    bool first = true;
    // Bounded so a map that changes underneath cannot loop forever.
    for (uint64_t i = 0; i <= uint64_t{info_.max_entries} * 2 + 16; i++) {
      if (::bpf_map_get_next_key(fd_.get(), first ? nullptr : &cur, &next) != 0) {
        if (errno == ENOENT) return okStatus();
        return errnoError(errno, "iterate " + info_.name);
      }
      first = false;
      cur = next;
      if (::bpf_map_lookup_elem(fd_.get(), &cur, buf.data()) != 0) {
        if (errno == ENOENT) continue;  // deleted between next_key and lookup
        return errnoError(errno, "lookup in " + info_.name);
      }
      if (!fn(cur, ValueCodec<V>::decode(buf.data(), ncpu_))) return okStatus();
    }
    return makeError(ErrorCode::kAborted, "iteration of {} did not terminate", info_.name);
  }

  KernelMap(UniqueFd fd, MapInfo info)
      : fd_(std::move(fd)), info_(std::move(info)), ncpu_(possibleCpus()) {}

  UniqueFd fd_;
  MapInfo info_;
  size_t ncpu_;
  mutable std::atomic<bool> batch_lookup_{true};  // false once the kernel refused a batch lookup
};

}  // namespace cilium::bpf
