// Maglev consistent hashing (Eisenbud et al., NSDI 2016) for bpf-lb-algorithm=maglev: the
// lookup table of a frontend, which the datapath indexes with a connection's hash
// (lb4_tuple_hash in bpf/lib/lb.h, lbTupleHash here).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agent/common/error.h"

namespace cilium::service {

// The table sizes bpf-lb-maglev-table-size accepts (Cilium's list, up to the 16-bit limit of
// lb4_service.maglev_size): primes, so that every skip visits every entry.
std::span<const uint32_t> maglevTableSizes();
// kInvalidArgument naming the allowed sizes.
Status validateMaglevTableSize(uint32_t m);

// The table of size `m` (a prime) for backends named by stable strings (address:port/proto):
// entry i is an index into `names`. Each backend fills its entries in the order of its own
// permutation (offset and skip from two hashes of its name), round-robin with the others, so
// every backend gets floor(m/n) or ceil(m/n) entries, and removing one backend moves few entries
// of the others. Deterministic: the same names give the same table on every node and after a
// restart. Empty `names` give an empty table.
std::vector<uint32_t> maglevTable(const std::vector<std::string>& names, uint32_t m);

// The datapath's connection hash (bpf/lib/lb.h lb4_tuple_hash); address and port in host order.
uint32_t lbTupleHash(uint32_t saddr, uint16_t sport, uint8_t proto);

}  // namespace cilium::service
