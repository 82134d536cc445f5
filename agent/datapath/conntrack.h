// Conntrack maintenance for the agent: the clock the datapath stamps entries with, and garbage
// collection of expired entries (the datapath only ever overwrites them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "agent/datapath/maps.h"

namespace cilium::datapath {

// Monotonic seconds on the datapath's clock (CLOCK_MONOTONIC_COARSE, as
// bpf_ktime_get_coarse_ns): ct_entry.lifetime is compared against this.
uint32_t monotonicSeconds();

struct CtGcStats {
  size_t scanned = 0;
  size_t deleted = 0;
};

// Deletes every entry of `map` whose lifetime is before `now` (monotonic seconds). An entry the
// datapath refreshes between the scan and the delete is kept: each candidate is re-read first.
// Safe to run while the datapath uses the map; the agent runs it periodically on the four CT maps
// (CtMap for cilium_ct4_global / cilium_ct_any4_global, Ct6Map for the IPv6 pair: the same
// rule, only the key differs). Instantiated for ct_key4 and ct_key6.
template <class Key>
Result<CtGcStats> gcConntrack(bpf::Map<Key, ct_entry>& map, uint32_t now);

// An entry is alive while now <= lifetime (the datapath's rule).
inline bool ctEntryExpired(const ct_entry& e, uint32_t now) { return e.lifetime < now; }

}  // namespace cilium::datapath
