// SNAT mappings (NodePort and masquerade): collected when their connection's conntrack entry is
// over.
#include "agent/service/nat_gc.h"

#include <netinet/in.h>

#include <vector>

namespace cilium::service {
namespace {

bool sameEntry(const nat4_entry& a, const nat4_entry& b) {
  return a.to_addr == b.to_addr && a.to_port == b.to_port && a.rev_nat_index == b.rev_nat_index &&
         a.created == b.created;
}

// The reverse key of the forward entry (k, v): the backend's replies to the node port.
nat4_key reverseOf(const nat4_key& k, const nat4_entry& v) {
  nat4_key r{};
  r.saddr = k.daddr;
  r.daddr = v.to_addr;
  r.sport = k.dport;
  r.dport = v.to_port;
  r.proto = k.proto;
  r.dir = NAT_DIR_INGRESS;
  return r;
}

// The forward key of the reverse entry (k, v): the client's packets to the backend.
nat4_key forwardOf(const nat4_key& k, const nat4_entry& v) {
  nat4_key f{};
  f.saddr = v.to_addr;
  f.daddr = k.saddr;
  f.sport = v.to_port;
  f.dport = k.sport;
  f.proto = k.proto;
  f.dir = NAT_DIR_EGRESS;
  return f;
}

class Collector {
 public:
  Collector(const NatGcMaps& maps, uint32_t now) : m_(maps), now_(now) {}

  Result<NatGcStats> run() {
    std::vector<std::pair<nat4_key, nat4_entry>> all;
    // Deleting while iterating restarts a kernel hash walk; collect first.
    CILIUM_RETURN_IF_ERROR(m_.nat->forEach([&](const nat4_key& k, const nat4_entry& v) {
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
        nat4_key rk = reverseOf(k, v);
        CILIUM_ASSIGN_OR_RETURN(auto rv, m_.nat->lookup(rk));
        if (rv && rv->to_addr == k.saddr && rv->to_port == k.sport)
          CILIUM_RETURN_IF_ERROR(removeIfUnchanged(rk, *rv));
      } else {
        // A reverse half whose forward half is gone or points at another port.
        CILIUM_ASSIGN_OR_RETURN(auto fv, m_.nat->lookup(forwardOf(k, v)));
        if (fv && fv->to_addr == k.daddr && fv->to_port == k.dport) continue;
        CILIUM_RETURN_IF_ERROR(removeIfUnchanged(k, v));
      }
    }
    return stats_;
  }

 private:
  // Whether the connection of the forward entry (k, v) is still live: a NodePort one's
  // CT_KEY_SERVICE entry, a masqueraded pod connection's CT_KEY_EGRESS entry.
  Result<bool> connectionLive(const nat4_key& k, const nat4_entry& v) {
    auto* ct = k.proto == IPPROTO_TCP ? m_.ct_tcp : m_.ct_any;
    if (v.flags & NAT_F_MASQ) {
      ct_key4 ck{};
      ck.saddr = k.saddr;
      ck.daddr = k.daddr;
      ck.sport = k.sport;
      ck.dport = k.dport;
      ck.nexthdr = k.proto;
      ck.flags = CT_KEY_EGRESS;
      CILIUM_ASSIGN_OR_RETURN(auto e, ct->lookup(ck));
      return e.has_value() && e->lifetime >= now_;
    }
    CILIUM_ASSIGN_OR_RETURN(auto rn, m_.revnat->lookup(v.rev_nat_index));
    if (!rn) return false;  // the service is gone: its replies cannot be translated any more
    ct_key4 ck{};
    ck.saddr = k.saddr;
    ck.daddr = rn->address;
    ck.sport = k.sport;
    ck.dport = rn->port;
    ck.nexthdr = k.proto;
    ck.flags = CT_KEY_SERVICE;
    CILIUM_ASSIGN_OR_RETURN(auto e, ct->lookup(ck));
    return e.has_value() && e->lifetime >= now_;
  }

  Status removeIfUnchanged(const nat4_key& k, const nat4_entry& seen) {
    CILIUM_ASSIGN_OR_RETURN(auto cur, m_.nat->lookup(k));
    if (!cur || !sameEntry(*cur, seen)) return okStatus();
    CILIUM_ASSIGN_OR_RETURN(bool removed, m_.nat->remove(k));
    if (removed) stats_.deleted++;
    return okStatus();
  }

  const NatGcMaps& m_;
  uint32_t now_;
  NatGcStats stats_;
};

}  // namespace

Result<NatGcStats> gcNat(const NatGcMaps& maps, uint32_t now) { return Collector(maps, now).run(); }

}  // namespace cilium::service
