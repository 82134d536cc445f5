// The peer identity of a redirected connection from the pinned datapath maps: the conntrack entry
// the redirect created holds the identity the policy was checked with; the ipcache answers when
// that entry is gone.
#include <arpa/inet.h>

#include "agent/bpf/abi.h"
#include "agent/bpf/map.h"
#include "agent/proxy/proxy.h"

namespace cilium::proxy {
namespace {

class KernelIdentitySource final : public IdentitySource {
 public:
  KernelIdentitySource(std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct,
                       std::unique_ptr<bpf::KernelMap<ipcache_key, remote_endpoint_info>> ipcache)
      : ct_(std::move(ct)), ipcache_(std::move(ipcache)) {}

  std::optional<uint32_t> peerIdentity(uint32_t saddr, uint16_t sport, uint32_t daddr,
                                       uint16_t dport, bool ingress) override {
    ct_key4 k{};
    k.saddr = saddr;
    k.daddr = daddr;
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.nexthdr = IPPROTO_TCP;
    k.flags = ingress ? CT_KEY_INGRESS : CT_KEY_EGRESS;
    if (auto e = ct_->lookup(k); e.ok() && e->has_value() && (*e)->src_sec_id != 0)
      return (*e)->src_sec_id;
    ipcache_key ik{};
    ik.prefixlen = IPCACHE_PREFIX_BASE + 32;
    ik.family = ENDPOINT_KEY_IPV4;
    ik.ip.ip4 = ingress ? saddr : daddr;
    if (auto e = ipcache_->lookup(ik); e.ok() && e->has_value()) return (*e)->sec_identity;
    return IDENTITY_WORLD;
  }

 private:
  std::unique_ptr<bpf::KernelMap<ct_key4, ct_entry>> ct_;
  std::unique_ptr<bpf::KernelMap<ipcache_key, remote_endpoint_info>> ipcache_;
};

}  // namespace

Result<std::unique_ptr<IdentitySource>> kernelIdentitySource(const std::string& pin_dir) {
  CILIUM_ASSIGN_OR_RETURN(
      auto ct, (bpf::KernelMap<ct_key4, ct_entry>::fromPinned(pin_dir + "/cilium_ct4_global")));
  CILIUM_ASSIGN_OR_RETURN(
      auto ipc,
      (bpf::KernelMap<ipcache_key, remote_endpoint_info>::fromPinned(pin_dir + "/cilium_ipcache")));
  return std::unique_ptr<IdentitySource>(new KernelIdentitySource(std::move(ct), std::move(ipc)));
}

}  // namespace cilium::proxy
