// Conntrack GC: scan, then delete what is still expired.
#include "agent/datapath/conntrack.h"

#include <time.h>

#include <vector>

namespace cilium::datapath {

uint32_t monotonicSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint32_t>(ts.tv_sec);
}

template <class Key>
Result<CtGcStats> gcConntrack(bpf::Map<Key, ct_entry>& map, uint32_t now) {
  CtGcStats stats;
  std::vector<Key> expired;
  // Deleting while iterating restarts a kernel hash walk; collect first.
  CILIUM_RETURN_IF_ERROR(map.forEach([&](const Key& k, const ct_entry& e) {
    stats.scanned++;
    if (ctEntryExpired(e, now)) expired.push_back(k);
    return true;
  }));
  for (const auto& k : expired) {
    CILIUM_ASSIGN_OR_RETURN(auto cur, map.lookup(k));
    if (!cur || !ctEntryExpired(*cur, now)) continue;
    CILIUM_ASSIGN_OR_RETURN(bool removed, map.remove(k));
    if (removed) stats.deleted++;
  }
  return stats;
}

template Result<CtGcStats> gcConntrack(CtMap& map, uint32_t now);
template Result<CtGcStats> gcConntrack(Ct6Map& map, uint32_t now);

}  // namespace cilium::datapath
