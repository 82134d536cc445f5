// A memory resource for the Service Manager's bookkeeping: small blocks (hash table nodes,
// per-frontend vectors) carved from mappings that grow to 2 MiB and are advised for
// transparent huge pages, and reused through per-size free lists. Programming 100k Services
// touches ~40 MB of new node memory; on a VM where every 4 KiB first-touch fault costs ~20 µs
// that was most of the time, and 2 MiB pages cut it several times (docs/benchmarks.md).
#pragma once

#include <sys/mman.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <vector>

namespace cilium::service {

// Not thread-safe: the Manager uses it under its mutex. Small blocks are kept for reuse until
// the arena is destroyed (memory is not returned to the system earlier); larger ones are freed
// for real: up to kLargeMin through new/delete, from kLargeMin (the bucket arrays of tables
// with ~64k entries and more) each in a mapping of its own, advised for huge pages too.
class HugePageArena final : public std::pmr::memory_resource {
 public:
  static constexpr size_t kSmallMax = 512;
  static constexpr size_t kLargeMin = 512u << 10;
  static constexpr size_t kHugePage = 2u << 20;

  HugePageArena() = default;
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;
  ~HugePageArena() override {
    for (const auto& m : mappings_) ::munmap(m.first, m.second);
  }

  size_t mappedBytes() const { return mapped_; }

 private:
  static constexpr size_t kGrain = 16;
  static constexpr size_t kFirstMapping = 256u << 10;

  struct FreeBlock {
    FreeBlock* next;
  };

  void* do_allocate(size_t bytes, size_t align) override {
    if (bytes >= kLargeMin && align <= kHugePage) return mapHuge(roundUp(bytes));
    if (bytes > kSmallMax || align > kGrain)
      return std::pmr::new_delete_resource()->allocate(bytes, align);
    size_t cls = classOf(bytes);
    if (FreeBlock* b = free_[cls]) {
      free_[cls] = b->next;
      return b;
    }
    size_t size = cls * kGrain;
    if (static_cast<size_t>(end_ - next_) < size) grow();
    void* p = next_;
    next_ += size;
    return p;
  }

  void do_deallocate(void* p, size_t bytes, size_t align) override {
    if (bytes >= kLargeMin && align <= kHugePage) {
      ::munmap(p, roundUp(bytes));
      return;
    }
    if (bytes > kSmallMax || align > kGrain) {
      std::pmr::new_delete_resource()->deallocate(p, bytes, align);
      return;
    }
    size_t cls = classOf(bytes);
    free_[cls] = new (p) FreeBlock{free_[cls]};
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  static size_t classOf(size_t bytes) { return bytes == 0 ? 1 : (bytes + kGrain - 1) / kGrain; }

  static size_t roundUp(size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }

  // `len` (a multiple of 2 MiB) bytes aligned to 2 MiB, so that the kernel can back them with
  // huge pages; advice only: without transparent huge pages they work with 4 KiB pages.
  static char* mapHuge(size_t len) {
    size_t over = len + kHugePage;
    void* raw = ::mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    auto addr = reinterpret_cast<uintptr_t>(raw);
    auto aligned = (addr + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
    size_t head = aligned - addr;
    if (head > 0) ::munmap(raw, head);
    size_t tail = over - head - len;
    if (tail > 0) ::munmap(reinterpret_cast<char*>(aligned + len), tail);
    auto* base = reinterpret_cast<char*>(aligned);
    (void)::madvise(base, len, MADV_HUGEPAGE);
    return base;
  }

  // A new mapping for small blocks: 256 KiB first, so that a Manager with a few Services stays
  // small, then 2 MiB huge-page mappings. The rest of the previous mapping is left unused.
  void grow() {
    size_t size = mapped_ == 0 ? kFirstMapping : kHugePage;
    char* base;
    if (size == kHugePage) {
      base = mapHuge(size);
    } else {
      void* raw = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (raw == MAP_FAILED) throw std::bad_alloc();
      base = static_cast<char*>(raw);
    }
    mappings_.emplace_back(base, size);
    mapped_ += size;
    next_ = base;
    end_ = base + size;
  }

  std::array<FreeBlock*, kSmallMax / kGrain + 1> free_{};
  std::vector<std::pair<char*, size_t>> mappings_;
  size_t mapped_ = 0;
  char* next_ = nullptr;
  char* end_ = nullptr;
};

}  // namespace cilium::service
