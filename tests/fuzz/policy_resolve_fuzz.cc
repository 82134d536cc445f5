// Fuzz target: a policy imported into an engine with a few identities, then resolved for an
// endpoint. Checks the map-state invariants the datapath relies on: keys unique, prefix_len
// equal to the key's prefix length, and no allow narrower than a deny of the same identity.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>
#include <tuple>

#include "agent/common/log.h"
#include "agent/identity/allocator.h"
#include "agent/policy/policy.h"

namespace {

using cilium::labels::Label;
using cilium::labels::Labels;
using cilium::labels::Source;

bool covers(const policy_key& wide, const policy_key& narrow) {
  if (wide.sec_label != narrow.sec_label || wide.egress != narrow.egress) return false;
  if (wide.prefixlen > narrow.prefixlen) return false;
  if (wide.prefixlen == POLICY_PREFIX_ANY_PROTO) return true;
  if (wide.protocol != narrow.protocol) return false;
  uint32_t bits = wide.prefixlen - POLICY_PREFIX_ANY_PORT;
  if (bits == 0) return true;
  uint16_t mask = static_cast<uint16_t>(0xffff << (16 - bits));
  return (ntohs(wide.dport) & mask) == (ntohs(narrow.dport) & mask);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = (cilium::setLogLevel("error"), true);
  (void)quiet;
  auto ids = cilium::identity::Allocator::open("");
  if (!ids.ok()) std::abort();
  Labels web{{Source::kK8s, "app", "web"},
             {Source::kK8s, "io.kubernetes.pod.namespace", "default"}};
  Labels db{{Source::kK8s, "app", "db"}, {Source::kK8s, "io.kubernetes.pod.namespace", "default"}};
  auto w = (*ids)->allocate(web);
  (void)(*ids)->allocate(db);
  (void)(*ids)->allocateCidr(*cilium::IpPrefix::parseMasked("10.0.0.0/8"));
  cilium::policy::Engine engine(**ids);
  if (!engine.import(std::string_view(reinterpret_cast<const char*>(data), size)).ok()) return 0;
  cilium::policy::Subject s{1, w->id, web, {{"http", 8080, cilium::policy::Protocol::kTcp}}};
  auto p = engine.attach(s);
  if (!p.ok()) return 0;
  std::set<std::tuple<uint32_t, uint32_t, uint8_t, uint8_t, uint16_t>> seen;
  for (const auto& e : p->entries) {
    if (e.value.prefix_len != e.key.prefixlen) std::abort();
    if (!seen.insert({e.key.prefixlen, e.key.sec_label, e.key.egress, e.key.protocol, e.key.dport})
             .second)
      std::abort();
    if (e.value.flags & POLICY_F_DENY) continue;
    for (const auto& d : p->entries)
      if ((d.value.flags & POLICY_F_DENY) && covers(d.key, e.key)) std::abort();
  }
  // Identities coming and going keep the deltas applicable.
  auto extra = (*ids)->allocate(Labels{{Source::kK8s, "app", "extra"}});
  if (!engine.consumeChanges(1).ok()) std::abort();
  (void)(*ids)->release(extra->id);
  if (!engine.consumeChanges(1).ok()) std::abort();
  return 0;
}
