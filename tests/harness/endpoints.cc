#include "tests/harness/endpoints.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cstring>
#include <optional>

#include "agent/common/fd.h"
#include "agent/common/netns.h"
#include "tests/harness/packet.h"

namespace cilium::testing {

Status programEndpoint(const datapath::Maps& maps, const Pod& pod, uint16_t id, uint32_t identity) {
  CILIUM_ASSIGN_OR_RETURN(uint32_t ip, datapath::parseIpv4(pod.ip));
  endpoint_info info{};
  info.ifindex = static_cast<uint32_t>(pod.host_ifindex);
  info.lxc_id = id;
  info.sec_id = identity;
  Mac m = mac(pod.mac), hm = mac(pod.host_mac);
  std::memcpy(info.mac, m.data(), m.size());
  std::memcpy(info.node_mac, hm.data(), hm.size());
  info.ipv4 = ip;
  std::optional<IpAddr> ip6;
  if (!pod.ip6.empty()) {
    CILIUM_ASSIGN_OR_RETURN(ip6, IpAddr::parse(pod.ip6));
    std::memcpy(info.ipv6, ip6->bytes().data(), sizeof(info.ipv6));
  }
  // ifindex first: the device's program finds its endpoint before anything routes to it.
  CILIUM_RETURN_IF_ERROR(maps.endpoints_by_ifindex->update(info.ifindex, info));
  CILIUM_RETURN_IF_ERROR(maps.endpoints->update(datapath::endpointKeyV4(ip), info));
  remote_endpoint_info remote{};
  remote.sec_identity = identity;
  if (ip6) {
    CILIUM_RETURN_IF_ERROR(maps.endpoints->update(datapath::endpointKey(*ip6), info));
    CILIUM_RETURN_IF_ERROR(
        maps.ipcache->update(datapath::ipcacheKey(IpPrefix::host(*ip6)), remote));
  }
  return maps.ipcache->update(datapath::ipcacheKeyV4(ip, 32), remote);
}

Status unprogramEndpoint(const datapath::Maps& maps, const Pod& pod) {
  CILIUM_ASSIGN_OR_RETURN(uint32_t ip, datapath::parseIpv4(pod.ip));
  if (!pod.ip6.empty()) {
    CILIUM_ASSIGN_OR_RETURN(IpAddr ip6, IpAddr::parse(pod.ip6));
    CILIUM_RETURN_IF_ERROR(maps.ipcache->remove(datapath::ipcacheKey(IpPrefix::host(ip6))));
    CILIUM_RETURN_IF_ERROR(maps.endpoints->remove(datapath::endpointKey(ip6)));
  }
  CILIUM_RETURN_IF_ERROR(maps.ipcache->remove(datapath::ipcacheKeyV4(ip, 32)));
  CILIUM_RETURN_IF_ERROR(maps.endpoints->remove(datapath::endpointKeyV4(ip)));
  CILIUM_RETURN_IF_ERROR(
      maps.endpoints_by_ifindex->remove(static_cast<uint32_t>(pod.host_ifindex)));
  return okStatus();
}

Status programNode(const datapath::Maps& maps, const std::string& node_ip) {
  CILIUM_ASSIGN_OR_RETURN(uint32_t ip, datapath::parseIpv4(node_ip));
  endpoint_info host{};
  host.flags = ENDPOINT_F_HOST;
  host.sec_id = IDENTITY_HOST;
  host.ipv4 = ip;
  CILIUM_RETURN_IF_ERROR(maps.endpoints->update(datapath::endpointKeyV4(ip), host));
  remote_endpoint_info remote{};
  remote.sec_identity = IDENTITY_HOST;
  return maps.ipcache->update(datapath::ipcacheKeyV4(ip, 32), remote);
}

Status attachXdpPass(const std::string& netns_path, const std::string& ifname) {
  // r0 = XDP_PASS; exit
  const bpf_insn prog[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
      {.code = BPF_JMP | BPF_EXIT},
  };
  UniqueFd fd(::bpf_prog_load(BPF_PROG_TYPE_XDP, "xdp_pass", "GPL", prog, 2, nullptr));
  if (!fd) return errnoError(errno, "load XDP_PASS");
  return runInNetns(netns_path, [&]() -> Status {
    int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    if (ifindex == 0) return errnoError(errno, ifname);
    int err = ::bpf_xdp_attach(ifindex, fd.get(), XDP_FLAGS_DRV_MODE, nullptr);
    if (err != 0) return errnoError(-err, "attach XDP_PASS to " + ifname);
    return okStatus();
  });
}

}  // namespace cilium::testing
