// cross_node_bench: a pod on one node to a pod on another, two node namespaces joined by a veth
// underlay, six setups side by side in one run:
//   overlay        our datapath in routing-mode=tunnel: bpf_lxc on the pods' veths encapsulates
//                  into cilium_vxlan (collect_md) with the identity in the VNI, bpf_overlay on
//                  the receiving node enforces and delivers; pod MTU 1450
//   kernel-vxlan   no BPF: a plain kernel VXLAN device per node (fixed remote) and a route to
//                  the other node's pod CIDR through it; pod MTU 1450
//   native         our datapath in routing-mode=native: bpf_lxc on the veths, no encapsulation,
//                  the pod CIDR routed via the other node's underlay address (what
//                  auto-direct-node-routes installs); pod MTU 1500
//   routes         no BPF: the same routes, nothing else; pod MTU 1500
//   overlay6       overlay, the pods talking over IPv6 (dual-stack pods): IPv6 inside VXLAN over
//                  the IPv4 underlay, as Cilium does in dual-stack clusters
//   native6        native, over IPv6: the IPv6 pod CIDR routed via the other node's IPv6
//                  underlay address (IPv6 forwarding on inside the node namespaces only)
// Per setup: TCP_RR on one connection (1-byte request and response: latency) and single-stream
// TCP throughput. Rounds alternate the setups' order (the machine's load drifts); medians and
// ratios (overlay / kernel-vxlan, native / routes, and each IPv6 setup / its IPv4 twin) are
// printed at the end. Never fails on time.
//
//   sudo ./build/bench/cross_node_bench [--seconds 3] [--rounds 3]
//       [--setups overlay,kernel-vxlan,native,routes,overlay6,native6]
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/datapath.h"
#include "agent/datapath/map_config.h"
#include "agent/datapath/tunnel.h"
#include "bench/bench_net.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using bench::die;
using bench::median;
using bench::must;
using bench::number;
using bench::runOk;
using bench::summary;

namespace {

constexpr uint32_t kClientId = 1001, kServerId = 1002;
constexpr const char* kUnderlay[2] = {"172.31.251.1", "172.31.251.2"};
// Subnet of the plain VXLAN devices (the next hop of the routes through them).
constexpr const char* kVxlanNet[2] = {"192.168.251.1", "192.168.251.2"};
constexpr const char* kPodCidr[2] = {"10.221.0.0/16", "10.222.0.0/16"};
constexpr const char* kPodIp[2] = {"10.221.0.11", "10.222.0.11"};
constexpr const char* kPodIp6[2] = {"fd00:221::11", "fd00:222::11"};
constexpr const char* kUnderlay6[2] = {"fd00:172:31:251::1", "fd00:172:31:251::2"};
constexpr const char* kPodCidr6[2] = {"fd00:221::/64", "fd00:222::/64"};
constexpr uint16_t kSinkPort = 5201;
constexpr uint16_t kPlainVxlanPort = 4789;  // apart from cilium_vxlan's 8472

// `ip` that may fail (removing what a setup may not have made).
void runQuiet(const std::vector<std::string>& argv) { (void)runChecked(argv); }

std::string netnsName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

uint32_t be(const char* ip) {
  in_addr a{};
  ::inet_pton(AF_INET, ip, &a);
  return a.s_addr;
}

enum Setup { kOverlay, kKernelVxlan, kNative, kRoutes, kOverlay6, kNative6, kSetups };
const char* kNames[kSetups] = {"overlay", "kernel-vxlan", "native",
                               "routes",  "overlay6",     "native6"};
bool isV6(Setup s) { return s == kOverlay6 || s == kNative6; }

struct Node {
  std::unique_ptr<testing::Topology> topo;
  std::unique_ptr<datapath::Datapath> dp;
  testing::Pod pod;
  std::string ns;  // the node namespace's name
};

class Bench {
 public:
  void build() {
    for (int i = 0; i < 2; i++) {
      nodes_[i].topo = must(testing::Topology::create(221 + i), "topology");
      nodes_[i].ns = netnsName(nodes_[i].topo->nodeNetns());
      // IPv6 on in the node namespaces (the topology turns it off), forwarding in them only.
      must(runOk({"ip", "netns", "exec", nodes_[i].ns, "sysctl", "-qw",
                  "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
                  "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                  "net.ipv6.conf.all.forwarding=1"}),
           "node IPv6");
    }
    must(runOk({"ip", "-n", nodes_[0].ns, "link", "add", "ul0", "type", "veth", "peer", "name",
                "ul0", "netns", nodes_[1].ns}),
         "underlay");
    for (int i = 0; i < 2; i++) {
      Node& n = nodes_[i];
      must(
          runOk({"ip", "-n", n.ns, "addr", "add", std::string(kUnderlay[i]) + "/24", "dev", "ul0"}),
          "underlay address");
      must(runOk({"ip", "-n", n.ns, "-6", "addr", "add", std::string(kUnderlay6[i]) + "/64", "dev",
                  "ul0", "nodad"}),
           "underlay IPv6 address");
      must(runOk({"ip", "-n", n.ns, "link", "set", "ul0", "up"}), "underlay up");
      n.pod = must(n.topo->addPod(i == 0 ? "client" : "server", kPodIp[i], kPodIp6[i]), "pod");
      // What the agent adds for a dual-stack endpoint: its IPv6 address routed to its veth.
      must(runOk({"ip", "-n", n.ns, "-6", "route", "replace", n.pod.ip6 + "/128", "dev",
                  n.pod.host_ifname}),
           "pod IPv6 route");
      n.dp = must(datapath::Datapath::load({must(n.topo->pinDir(), "pin dir")}), "load");
      auto maps = n.dp->maps();
      must(testing::programNode(maps, n.topo->routerIp()), "node");
      must(testing::programEndpoint(maps, n.pod, 1, i == 0 ? kClientId : kServerId), "endpoint");
      // The other pod, as the agent learns it from its CiliumEndpoint: identity and node.
      remote_endpoint_info info{};
      info.sec_identity = i == 0 ? kServerId : kClientId;
      info.tunnel_endpoint.ip4 = be(kUnderlay[1 - i]);
      info.flags = IPCACHE_F_HAS_TUNNEL_EP;
      must(maps.ipcache->update(datapath::ipcacheKeyV4(be(kPodIp[1 - i]), 32), info), "ipcache");
      // Its IPv6 address tunnels to the same IPv4 node address.
      auto other6 = IpPrefix::host(*IpAddr::parse(kPodIp6[1 - i]));
      must(maps.ipcache->update(datapath::ipcacheKey(other6), info), "ipcache IPv6");
      // The client may open anything; the server admits the client's identity.
      std::vector<datapath::PolicyEntry> rules = {
          {datapath::policyKey(i == 0 ? 0 : kClientId, i == 0 ? POLICY_EGRESS : POLICY_INGRESS, 0,
                               0, 0),
           {}}};
      must(maps.policy->replace(1, rules), "policy");
      must(datapath::bumpPolicyRevision(*maps.runtime_config), "policy revision");
    }
  }

  // Everything a setup adds goes; then `s`'s devices, routes, programs and pod MTU.
  void configure(Setup s) {
    for (int i = 0; i < 2; i++) {
      Node& n = nodes_[i];
      must(runInNetns(n.topo->nodeNetns(),
                      [&]() -> Status {
                        CILIUM_RETURN_IF_ERROR(n.dp->detachEndpoint(n.pod.host_ifindex));
                        CILIUM_RETURN_IF_ERROR(n.dp->detachOverlay());
                        return datapath::removeVxlanDevice();
                      }),
           "reset");
      runQuiet({"ip", "-n", n.ns, "link", "del", "vx0"});
      runQuiet({"ip", "-n", n.ns, "route", "del", kPodCidr[1 - i]});
      runQuiet({"ip", "-n", n.ns, "-6", "route", "del", kPodCidr6[1 - i]});
    }
    const bool vxlan = s == kOverlay || s == kKernelVxlan || s == kOverlay6;
    const bool bpf = s == kOverlay || s == kNative || s == kOverlay6 || s == kNative6;
    for (int i = 0; i < 2; i++) {
      Node& n = nodes_[i];
      const std::string mtu = std::to_string(must(datapath::podMtu(1500, vxlan), "mtu"));
      must(runOk({"ip", "-n", netnsName(n.pod.netns), "link", "set", "eth0", "mtu", mtu}),
           "pod mtu");
      if (s == kKernelVxlan) {
        must(runOk({"ip", "-n", n.ns, "link", "add", "vx0", "type", "vxlan", "id", "2", "dstport",
                    std::to_string(kPlainVxlanPort), "local", kUnderlay[i], "remote",
                    kUnderlay[1 - i], "dev", "ul0"}),
             "vxlan");
        must(runOk({"ip", "-n", n.ns, "addr", "add", std::string(kVxlanNet[i]) + "/24", "dev",
                    "vx0"}),
             "vxlan address");
        must(runOk({"ip", "-n", n.ns, "link", "set", "vx0", "up"}), "vxlan up");
        must(runOk({"ip", "-n", n.ns, "route", "replace", kPodCidr[1 - i], "via", kVxlanNet[1 - i],
                    "dev", "vx0"}),
             "route");
      }
      if (s == kNative || s == kRoutes)
        must(runOk({"ip", "-n", n.ns, "route", "replace", kPodCidr[1 - i], "via", kUnderlay[1 - i],
                    "dev", "ul0"}),
             "route");
      if (s == kNative6)
        must(runOk({"ip", "-n", n.ns, "-6", "route", "replace", kPodCidr6[1 - i], "via",
                    kUnderlay6[1 - i], "dev", "ul0"}),
             "IPv6 route");
      if (!bpf) continue;
      must(runInNetns(n.topo->nodeNetns(),
                      [&]() -> Status {
                        CILIUM_RETURN_IF_ERROR(n.dp->attachEndpoint(n.pod.host_ifindex));
                        if (s != kOverlay && s != kOverlay6) return okStatus();
                        CILIUM_ASSIGN_OR_RETURN(
                            int ifindex, datapath::ensureVxlanDevice(datapath::kDefaultTunnelPort));
                        return n.dp->attachOverlay(ifindex);
                      }),
           "attach");
    }
  }

  const testing::Pod& client() const { return nodes_[0].pod; }
  const testing::Pod& server() const { return nodes_[1].pod; }

 private:
  Node nodes_[2];
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 3, rounds = 3;
  std::string setups = "overlay,kernel-vxlan,native,routes,overlay6,native6";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = number(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = number(argv[++i]);
    } else if (a == "--setups" && i + 1 < argc) {
      setups = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds N] [--rounds R] "
                   "[--setups overlay,kernel-vxlan,native,routes,overlay6,native6]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!bench::startPrivilegedBench("cross_node_bench")) return 1;
  Bench b;
  b.build();
  auto sink = must(bench::SinkServer::start(b.server().netns, b.server().ip, kSinkPort), "sink");
  auto sink6 =
      must(bench::SinkServer::start(b.server().netns, b.server().ip6, kSinkPort), "sink IPv6");

  std::vector<double> rr[kSetups], gbps[kSetups];
  uint16_t port = 9000;
  std::printf("cross_node_bench: %d rounds of %d s per test and setup\n", rounds, seconds);
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < kSetups; k++) {
      auto s = static_cast<Setup>((r + k) % kSetups);  // a different first setup each round
      if (!bench::modeWanted(setups, kNames[s])) continue;
      b.configure(s);
      const std::string& to = isV6(s) ? b.server().ip6 : b.server().ip;
      // The first connection after a change resolves neighbours and routes: not measured.
      must(testing::tcpRequestResponseRate(b.client().netns, b.server().netns, to, port++,
                                           std::chrono::seconds(1)),
           std::string("warm-up ") + kNames[s]);
      double t = must(testing::tcpRequestResponseRate(b.client().netns, b.server().netns, to,
                                                      port++, std::chrono::seconds(seconds)),
                      std::string("tcp_rr ") + kNames[s]);
      double g = must(bench::streamGbps(b.client().netns, to, kSinkPort, seconds),
                      std::string("stream ") + kNames[s]);
      rr[s].push_back(t);
      gbps[s].push_back(g);
      std::printf("round %d %-13s TCP_RR %7.0f/s  stream %6.2f Gbit/s\n", r + 1, kNames[s], t, g);
      std::fflush(stdout);
    }
  }
  b.configure(kRoutes);  // programs detached before the datapath objects go

  std::printf("\npod to pod across two nodes, %d rounds of %d s, median (min-max):\n\n", rounds,
              seconds);
  std::printf("%-24s %22s %22s %8s %22s %22s %8s\n", "", "overlay (ours)", "kernel vxlan", "ratio",
              "native (ours)", "plain routes", "ratio");
  auto ratio = [](const std::vector<double>& ours, const std::vector<double>& base) {
    if (ours.empty() || base.empty() || median(base) == 0) return std::string("-");
    return fmt::format("{:.1f}%", 100 * median(ours) / median(base));
  };
  auto row = [&](const char* name, const std::vector<double>* v, int prec) {
    std::printf("%-24s %22s %22s %8s %22s %22s %8s\n", name, summary(v[kOverlay], prec).c_str(),
                summary(v[kKernelVxlan], prec).c_str(), ratio(v[kOverlay], v[kKernelVxlan]).c_str(),
                summary(v[kNative], prec).c_str(), summary(v[kRoutes], prec).c_str(),
                ratio(v[kNative], v[kRoutes]).c_str());
  };
  row("TCP_RR (transactions/s)", rr, 0);
  row("single stream (Gbit/s)", gbps, 2);
  std::printf("\n%-24s %22s %22s %8s %22s %22s %8s\n", "", "overlay IPv6", "overlay IPv4", "ratio",
              "native IPv6", "native IPv4", "ratio");
  auto row6 = [&](const char* name, const std::vector<double>* v, int prec) {
    std::printf("%-24s %22s %22s %8s %22s %22s %8s\n", name, summary(v[kOverlay6], prec).c_str(),
                summary(v[kOverlay], prec).c_str(), ratio(v[kOverlay6], v[kOverlay]).c_str(),
                summary(v[kNative6], prec).c_str(), summary(v[kNative], prec).c_str(),
                ratio(v[kNative6], v[kNative]).c_str());
  };
  row6("TCP_RR (transactions/s)", rr, 0);
  row6("single stream (Gbit/s)", gbps, 2);
  std::printf(
      "\ntargets: overlay >= 95%% of kernel vxlan, native >= 97%% of plain routes, IPv6 within "
      "15%% of IPv4\n");
  return 0;
}
