// The peer identity of a redirected connection from the pinned datapath maps: the conntrack entry
// the redirect created holds the identity the policy was checked with; the ipcache answers when
// that entry is gone. Either family (cilium_ct4_global / cilium_ct6_global, /32 or /128).
#include <arpa/inet.h>

#include <cstring>
#include <type_traits>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/proxy/proxy.h"

namespace cilium::proxy {
namespace {

// The conntrack key of the redirected connection, as the datapath created it.
template <typename Key>
Key ctKey(const IpAddr& saddr, uint16_t sport, const IpAddr& daddr, uint16_t dport, bool ingress) {
  Key k{};
  if constexpr (std::is_same_v<Key, ct_key4>) {
    k.saddr = saddr.v4NetworkOrder();
    k.daddr = daddr.v4NetworkOrder();
  } else {
    std::memcpy(&k.saddr, saddr.bytes().data(), 16);
    std::memcpy(&k.daddr, daddr.bytes().data(), 16);
  }
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.nexthdr = IPPROTO_TCP;
  k.flags = ingress ? CT_KEY_INGRESS : CT_KEY_EGRESS;
  return k;
}

template <typename Key>
std::optional<uint32_t> ctIdentity(bpf::KernelMap<Key, ct_entry>* ct, const Key& k) {
  if (ct == nullptr) return std::nullopt;
  if (auto e = ct->lookup(k); e.ok() && e->has_value() && (*e)->src_sec_id != 0)
    return (*e)->src_sec_id;
  return std::nullopt;
}

class KernelIdentitySource final : public IdentitySource {
 public:
  KernelIdentitySource(std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct4,
                       std::unique_ptr<bpf::KernelMap<ct_key6, ct_entry>> ct6,
                       std::unique_ptr<bpf::KernelMap<ipcache_key, remote_endpoint_info>> ipcache)
      : ct4_(std::move(ct4)), ct6_(std::move(ct6)), ipcache_(std::move(ipcache)) {}

  std::optional<uint32_t> peerIdentity(const IpAddr& saddr, uint16_t sport, const IpAddr& daddr,
                                       uint16_t dport, bool ingress) override {
    if (saddr.family() != daddr.family()) return std::nullopt;  // never from the stack
    auto id = saddr.isV4()
                  ? ctIdentity(ct4_.get(), ctKey<ct_key4>(saddr, sport, daddr, dport, ingress))
                  : ctIdentity(ct6_.get(), ctKey<ct_key6>(saddr, sport, daddr, dport, ingress));
    if (id) return id;
    const IpAddr& peer = ingress ? saddr : daddr;
    ipcache_key ik{};
    ik.prefixlen = IPCACHE_PREFIX_BASE + peer.bits();
    ik.family = peer.isV4() ? ENDPOINT_KEY_IPV4 : ENDPOINT_KEY_IPV6;
    std::memcpy(&ik.ip, peer.bytes().data(), peer.isV4() ? 4 : 16);
    if (auto e = ipcache_->lookup(ik); e.ok() && e->has_value()) return (*e)->sec_identity;
    return IDENTITY_WORLD;
  }

 private:
  std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct4_;
  std::unique_ptr<bpf::KernelMap<ct_key6, ct_entry>> ct6_;  // null: no IPv6 maps pinned
  std::unique_ptr<bpf::KernelMap<ipcache_key, remote_endpoint_info>> ipcache_;
};

}  // namespace

Result<std::unique_ptr<IdentitySource>> kernelIdentitySource(const std::string& pin_dir) {
  CILIUM_ASSIGN_OR_RETURN(
      auto ct, (bpf::KernelMap<ct_key4, ct_entry>::fromPinned(pin_dir + "/cilium_ct4_global")));
  // A datapath without the IPv6 conntrack map (older pins): IPv6 peers from the ipcache only.
  std::unique_ptr<bpf::KernelMap<ct_key6, ct_entry>> ct6;
  if (auto m = bpf::KernelMap<ct_key6, ct_entry>::fromPinned(pin_dir + "/cilium_ct6_global");
      m.ok())
    ct6 = std::move(*m);
  CILIUM_ASSIGN_OR_RETURN(
      auto ipc,
      (bpf::KernelMap<ipcache_key, remote_endpoint_info>::fromPinned(pin_dir + "/cilium_ipcache")));
  return std::unique_ptr<IdentitySource>(
      new KernelIdentitySource(std::move(ct), std::move(ct6), std::move(ipc)));
}

}  // namespace cilium::proxy
