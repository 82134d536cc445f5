// SNAT mappings (NodePort and masquerade, both families): collected when their connection's
// conntrack entry is over.
#include "agent/service/nat_gc.h"

#include <netinet/in.h>

#include <cstring>
#include <type_traits>
#include <vector>

namespace cilium::service {
namespace {

bool sameAddr(uint32_t a, uint32_t b) { return a == b; }
bool sameAddr(const v4v6_addr& a, const v4v6_addr& b) {
  return std::memcmp(a.ip6, b.ip6, sizeof(a.ip6)) == 0;
}

template <class Entry>
bool sameEntry(const Entry& a, const Entry& b) {
  return sameAddr(a.to_addr, b.to_addr) && a.to_port == b.to_port &&
         a.rev_nat_index == b.rev_nat_index && a.created == b.created;
}

// The reverse key of the forward entry (k, v): the remote's replies to the node port.
template <class Key, class Entry>
Key reverseOf(const Key& k, const Entry& v) {
  Key r{};
  r.saddr = k.daddr;
  r.daddr = v.to_addr;
  r.sport = k.dport;
  r.dport = v.to_port;
  r.proto = k.proto;
  r.dir = NAT_DIR_INGRESS;
  return r;
}

// The forward key of the reverse entry (k, v): the original source's packets to the remote.
template <class Key, class Entry>
Key forwardOf(const Key& k, const Entry& v) {
  Key f{};
  f.saddr = v.to_addr;
  f.daddr = k.saddr;
  f.sport = v.to_port;
  f.dport = k.sport;
  f.proto = k.proto;
  f.dir = NAT_DIR_EGRESS;
  return f;
}

// The maps of one family.
template <class Key, class Entry, class CtKey, class RevNat>
struct FamilyMaps {
  bpf::Map<Key, Entry>* nat;
  bpf::Map<CtKey, ct_entry>* ct_tcp;
  bpf::Map<CtKey, ct_entry>* ct_any;
  bpf::Map<uint32_t, RevNat>* revnat;  // null: NodePort mappings have nothing to keep them
};

template <class Key, class Entry, class CtKey, class RevNat>
class Collector {
 public:
  Collector(const FamilyMaps<Key, Entry, CtKey, RevNat>& maps, uint32_t now)
      : m_(maps), now_(now) {}

  Result<NatGcStats> run() {
    std::vector<std::pair<Key, Entry>> all;
    // Deleting while iterating restarts a kernel hash walk; collect first.
    CILIUM_RETURN_IF_ERROR(m_.nat->forEach([&](const Key& k, const Entry& v) {
      all.emplace_back(k, v);
      return true;
    }));
    stats_.scanned = all.size();
    for (const auto& [k, v] : all) {
      if (v.created + kNatGcMinAgeSeconds > now_) continue;
      if (k.dir == NAT_DIR_EGRESS) {
        CILIUM_ASSIGN_OR_RETURN(bool live, connectionLive(k, v));
        if (live) continue;
        CILIUM_RETURN_IF_ERROR(removeIfUnchanged(k, v));
        // The reverse half, unless the port already serves another connection.
        Key rk = reverseOf(k, v);
        CILIUM_ASSIGN_OR_RETURN(auto rv, m_.nat->lookup(rk));
        if (rv && sameAddr(rv->to_addr, k.saddr) && rv->to_port == k.sport)
          CILIUM_RETURN_IF_ERROR(removeIfUnchanged(rk, *rv));
      } else {
        // A reverse half whose forward half is gone or points at another port.
        CILIUM_ASSIGN_OR_RETURN(auto fv, m_.nat->lookup(forwardOf(k, v)));
        if (fv && sameAddr(fv->to_addr, k.daddr) && fv->to_port == k.dport) continue;
        CILIUM_RETURN_IF_ERROR(removeIfUnchanged(k, v));
      }
    }
    return stats_;
  }

 private:
  // Whether the connection of the forward entry (k, v) is still live: a NodePort one's
  // CT_KEY_SERVICE entry, a masqueraded pod connection's CT_KEY_EGRESS entry.
  Result<bool> connectionLive(const Key& k, const Entry& v) {
    auto* ct = k.proto == IPPROTO_TCP ? m_.ct_tcp : m_.ct_any;
    CtKey ck{};
    ck.saddr = k.saddr;
    ck.sport = k.sport;
    ck.nexthdr = k.proto;
    if (v.flags & NAT_F_MASQ) {
      ck.daddr = k.daddr;
      ck.dport = k.dport;
      ck.flags = CT_KEY_EGRESS;
    } else {
      if (m_.revnat == nullptr) return false;
      CILIUM_ASSIGN_OR_RETURN(auto rn, m_.revnat->lookup(v.rev_nat_index));
      if (!rn) return false;  // the service is gone: its replies cannot be translated any more
      ck.daddr = rn->address;
      ck.dport = rn->port;
      ck.flags = CT_KEY_SERVICE;
    }
    CILIUM_ASSIGN_OR_RETURN(auto e, ct->lookup(ck));
    return e.has_value() && e->lifetime >= now_;
  }

  Status removeIfUnchanged(const Key& k, const Entry& seen) {
    CILIUM_ASSIGN_OR_RETURN(auto cur, m_.nat->lookup(k));
    if (!cur || !sameEntry(*cur, seen)) return okStatus();
    CILIUM_ASSIGN_OR_RETURN(bool removed, m_.nat->remove(k));
    if (removed) stats_.deleted++;
    return okStatus();
  }

  const FamilyMaps<Key, Entry, CtKey, RevNat>& m_;
  uint32_t now_;
  NatGcStats stats_;
};

}  // namespace

Result<NatGcStats> gcNat(const NatGcMaps& maps, uint32_t now) {
  FamilyMaps<nat4_key, nat4_entry, ct_key4, lb4_reverse_nat> m{maps.nat, maps.ct_tcp, maps.ct_any,
                                                               maps.revnat};
  return Collector(m, now).run();
}

Result<NatGcStats> gcNat6(const NatGcMaps6& maps, uint32_t now) {
  FamilyMaps<nat6_key, nat6_entry, ct_key6, lb6_reverse_nat> m{maps.nat, maps.ct_tcp, maps.ct_any,
                                                               maps.revnat};
  return Collector(m, now).run();
}

}  // namespace cilium::service
