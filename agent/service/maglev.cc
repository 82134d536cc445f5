// Maglev table population.
#include "agent/service/maglev.h"

#include <array>

namespace cilium::service {
namespace {

constexpr std::array<uint32_t, 9> kSizes = {251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521};

// FNV-1a over the name, then murmur3's finalizer; the seed separates the two hashes Maglev
// needs (offset and skip) so that they are independent.
uint64_t hashName(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

std::span<const uint32_t> maglevTableSizes() { return kSizes; }

Status validateMaglevTableSize(uint32_t m) {
  for (uint32_t s : kSizes)
    if (s == m) return okStatus();
  return makeError(ErrorCode::kInvalidArgument,
                   "maglev table size {} is not one of 251, 509, 1021, 2039, 4093, 8191, 16381, "
                   "32749, 65521",
                   m);
}

std::vector<uint32_t> maglevTable(const std::vector<std::string>& names, uint32_t m) {
  std::vector<uint32_t> table;
  if (names.empty() || m == 0) return table;
  constexpr uint32_t kEmpty = UINT32_MAX;
  table.assign(m, kEmpty);
  size_t n = names.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; i++) {
    offset[i] = hashName(names[i], 0x6d61676c6576ull) % m;
    skip[i] = m > 1 ? hashName(names[i], 0x736b6970ull) % (m - 1) + 1 : 1;
  }
  uint32_t filled = 0;
  while (true) {
    for (size_t i = 0; i < n; i++) {
      // The next entry of backend i's permutation that nobody holds yet.
      uint64_t c = (offset[i] + next[i] * skip[i]) % m;
      while (table[c] != kEmpty) {
        next[i]++;
        c = (offset[i] + next[i] * skip[i]) % m;
      }
      table[c] = static_cast<uint32_t>(i);
      next[i]++;
      if (++filled == m) return table;
    }
  }
}

uint32_t lbTupleHash(uint32_t saddr, uint16_t sport, uint8_t proto) {
  uint64_t h = (uint64_t{saddr} << 32) | (uint32_t{sport} << 16) | proto;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<uint32_t>(h);
}

}  // namespace cilium::service
