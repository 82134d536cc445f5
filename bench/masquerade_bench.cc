// masquerade_bench: a pod's new connections to a host outside the cluster, masqueraded to the
// node's address, side by side in one run:
//   routed    the outside host has a route back to the pods: no masquerade (the floor)
//   bpf       our BPF masquerade: bpf_host on the native device (enable-bpf-masquerade)
//   iptables  an iptables MASQUERADE rule in POSTROUTING (iptables-nft), as Cilium without BPF
//             masquerade or a plain node would do it
// and the same three for IPv6 (routed6, bpf6, ip6tables: the dual-stack pod's IPv6 to the outside
// host's IPv6 address, bpf6 being enable-ipv6-masquerade).
// bpf_lxc runs on the pod's veth in every mode. Per mode: new-connection latency (p50/p99) and
// rate with an RST close (the NAT mapping's allocation is the difference), and TCP_CRR
// transactions per second (connect, 1-byte request and answer, FIN close: connections that end,
// so node ports are reused under churn). The topology is tests/harness/fabric.h. Prints numbers;
// never fails on time.
//
//   sudo ./build/bench/masquerade_bench [--connects 3000] [--seconds 3] [--rounds 3] [--modes
//   routed,bpf,iptables,routed6,bpf6,ip6tables]
// Rounds build a fresh topology and run every mode (the machine's load drifts); the medians over
// rounds are printed at the end.
#include <net/if.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/datapath.h"
#include "agent/service/host_datapath.h"
#include "bench/bench_net.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/fabric.h"
#include "tests/harness/netns.h"

using namespace cilium;
using bench::die;
using bench::median;
using bench::must;
using bench::runOk;
using testing::Fabric;

namespace {

constexpr uint16_t kSinkPort = 8080;
constexpr uint16_t kCrrPort = 8081;
constexpr const char* kPodCidr = "10.212.0.0/16";
constexpr const char* kPodIp = "10.212.0.21";
constexpr const char* kPodCidr6 = "fd00:212::/64";
constexpr const char* kPodIp6 = "fd00:212::21";

struct Sample {
  double connect_p50 = 0, connect_p99 = 0, conns_per_sec = 0, crr_per_sec = 0, crr_p50 = 0;
  size_t failed = 0;
};

Sample measure(const char* mode, const std::string& pod_netns, int connects, double seconds,
               int round, const std::string& note) {
  // The IPv6 modes (routed6, bpf6, ip6tables) are named with a 6.
  const char* server =
      std::string(mode).find('6') != std::string::npos ? Fabric::kClientIp6 : Fabric::kClientIp;
  auto c = must(bench::measureConnects(pod_netns, server, kSinkPort, connects), mode);
  auto crr = must(bench::measureCrr(pod_netns, server, kCrrPort, seconds, 0.5), mode);
  Sample s{c.p50_us, c.p99_us, c.per_sec, crr.per_sec, crr.p50_us, c.failed + crr.failed};
  std::printf("| %d | %s | %.1f | %.1f | %.0f | %.0f | %.1f | %zu | %s |\n", round, mode,
              s.connect_p50, s.connect_p99, s.conns_per_sec, s.crr_per_sec, s.crr_p50, s.failed,
              note.c_str());
  std::fflush(stdout);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int connects = 3000;
  double seconds = 3;
  int rounds = 3;
  std::string modes = "routed,bpf,iptables,routed6,bpf6,ip6tables";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--connects" && i + 1 < argc) {
      connects = std::max(10, std::atoi(argv[++i]));
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::max(0.5, std::atof(argv[++i]));
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--modes" && i + 1 < argc) {
      modes = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--connects N] [--seconds S] [--rounds R] [--modes "
          "routed,bpf,iptables,routed6,bpf6,ip6tables]\n",
          argv[0]);
      return 2;
    }
  }
  auto want = [&](const char* m) { return bench::modeWanted(modes, m); };
  if (!bench::startPrivilegedBench("masquerade_bench")) return 1;

  std::printf(
      "masquerade_bench: %d rounds of %d connects (RST close) and %.1f s TCP_CRR per mode; pod "
      "%s -> outside host %s, leaving node device ext0 %s (IPv6: %s -> %s, from %s)\n\n",
      rounds, connects, seconds, kPodIp, Fabric::kClientIp, Fabric::kNodeIp, kPodIp6,
      Fabric::kClientIp6, Fabric::kNodeIp6);
  std::printf(
      "| round | mode | connect p50 µs | p99 µs | conns/s | CRR trans/s | CRR p50 µs | failed | "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::map<std::string, std::vector<Sample>> samples;
  uint64_t served = 0;
  for (int round = 1; round <= rounds; round++) {
    // A fresh topology per round: the iptables mode's nat hooks stay registered in the node's
    // namespace once created (iptables-nft cannot remove the table), and would tax the others.
    auto topo = must(testing::Topology::create(212), "topology");
    auto pod = must(topo->addPod("p1", kPodIp, kPodIp6), "pod");
    Fabric net;
    must(net.build(*topo), "fabric");
    must(net.enableIpv6(*topo), "fabric IPv6");
    must(bench::prepareCrrClient(pod.netns), "pod sysctls");
    std::string pin = must(topo->pinDir(), "pin dir");
    auto sink = must(bench::SinkServer::start(net.outsideNetns(), Fabric::kClientIp, kSinkPort),
                     "sink server");
    auto crr = must(bench::CrrServer::start(net.outsideNetns(), Fabric::kClientIp, kCrrPort),
                    "CRR server");
    auto sink6 = must(bench::SinkServer::start(net.outsideNetns(), Fabric::kClientIp6, kSinkPort),
                      "sink server (IPv6)");
    auto crr6 = must(bench::CrrServer::start(net.outsideNetns(), Fabric::kClientIp6, kCrrPort),
                     "CRR server (IPv6)");
    auto dp = must(datapath::Datapath::load({pin}), "datapath");
    auto maps = dp->maps();
    std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                            {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
    must(testing::programEndpoint(maps, pod, 1, 1001), "endpoint");
    must(maps.policy->replace(1, open), "policy");
    must(testing::programNode(maps, topo->routerIp()), "node");
    must(runInNetns(topo->nodeNetns(), [&] { return dp->attachEndpoint(pod.host_ifindex); }),
         "attach pod");
    int ifindex = must(runInNetnsValue<int>(topo->nodeNetns(),
                                            []() -> Result<int> {
                                              int i = static_cast<int>(::if_nametoindex("ext0"));
                                              if (i == 0) return errnoError(errno, "ext0");
                                              return i;
                                            }),
                       "ext0");
    std::string out = net.outsideNetns().substr(std::string("/run/netns/").size());
    std::string node = topo->nodeNetns().substr(std::string("/run/netns/").size());

    if (want("routed")) {
      must(runOk({"ip", "-n", out, "route", "add", kPodCidr, "via", Fabric::kNodeIp}), "route");
      samples["routed"].push_back(measure("routed", pod.netns, connects, seconds, round,
                                          "no masquerade: the outside routes to pods"));
      must(runOk({"ip", "-n", out, "route", "del", kPodCidr}), "route");
    }
    if (want("bpf")) {
      auto host = must(service::HostDatapath::load(pin, {.enable_masquerade = true}), "bpf_host");
      must(host->setNonMasqueradeCidrs({*IpPrefix::parse(kPodCidr)}), "ipmasq");
      must(runInNetns(topo->nodeNetns(),
                      [&] { return host->attachDevice(ifindex, *IpAddr::parse(Fabric::kNodeIp)); }),
           "attach ext0");
      samples["bpf"].push_back(
          measure("bpf", pod.netns, connects, seconds, round, "bpf_host on ext0 (tcx)"));
      must(runInNetns(topo->nodeNetns(), [&] { return host->detachDevice(ifindex); }), "detach");
    }
    if (want("routed6")) {
      // Replies are routed to the pod by the node's stack (masquerade redirects them itself).
      must(runOk({"ip", "-n", node, "-6", "route", "replace", std::string(kPodIp6) + "/128", "dev",
                  pod.host_ifname}),
           "pod route");
      must(runOk({"ip", "-n", out, "-6", "route", "add", kPodCidr6, "via", Fabric::kNodeIp6}),
           "route");
      samples["routed6"].push_back(measure("routed6", pod.netns, connects, seconds, round,
                                           "no masquerade: the outside routes to pods"));
      must(runOk({"ip", "-n", out, "-6", "route", "del", kPodCidr6}), "route");
    }
    if (want("bpf6")) {
      auto host = must(service::HostDatapath::load(
                           pin, {.enable_masquerade = true, .enable_masquerade6 = true}),
                       "bpf_host");
      must(host->setNonMasqueradeCidrs({*IpPrefix::parse(kPodCidr), *IpPrefix::parse(kPodCidr6)}),
           "ipmasq");
      must(runInNetns(topo->nodeNetns(),
                      [&] {
                        return host->attachDevice(ifindex, *IpAddr::parse(Fabric::kNodeIp),
                                                  service::XdpMode::kDisabled,
                                                  *IpAddr::parse(Fabric::kNodeIp6));
                      }),
           "attach ext0");
      samples["bpf6"].push_back(
          measure("bpf6", pod.netns, connects, seconds, round, "bpf_host on ext0 (tcx), IPv6"));
      must(runInNetns(topo->nodeNetns(), [&] { return host->detachDevice(ifindex); }), "detach");
    }
    // Last in the round: see above.
    if (want("iptables")) {
      must(runOk({"ip", "netns", "exec", node, "iptables-nft", "-t", "nat", "-A", "POSTROUTING",
                  "-s", kPodCidr, "!", "-d", kPodCidr, "-o", "ext0", "-j", "MASQUERADE"}),
           "iptables rule");
      samples["iptables"].push_back(measure("iptables", pod.netns, connects, seconds, round,
                                            "MASQUERADE in POSTROUTING, iptables-nft"));
    }
    if (want("ip6tables")) {
      must(runOk({"ip", "netns", "exec", node, "ip6tables-nft", "-t", "nat", "-A", "POSTROUTING",
                  "-s", kPodCidr6, "!", "-d", kPodCidr6, "-o", "ext0", "-j", "MASQUERADE"}),
           "ip6tables rule");
      samples["ip6tables"].push_back(measure("ip6tables", pod.netns, connects, seconds, round,
                                             "MASQUERADE in POSTROUTING, ip6tables-nft"));
    }
    served += crr->served() + crr6->served();
  }

  std::printf("\nMedians over %d rounds:\n\n", rounds);
  std::printf(
      "| mode | connect p50 µs | conns/s | CRR trans/s | failed |\n|---|---|---|---|---|\n");
  for (const char* mode : {"routed", "bpf", "iptables", "routed6", "bpf6", "ip6tables"}) {
    auto it = samples.find(mode);
    if (it == samples.end()) continue;
    std::vector<double> p50, cps, crr;
    size_t failed = 0;
    for (const auto& x : it->second) {
      p50.push_back(x.connect_p50);
      cps.push_back(x.conns_per_sec);
      crr.push_back(x.crr_per_sec);
      failed += x.failed;
    }
    std::printf("| %s | %.1f | %.0f | %.0f | %zu |\n", mode, median(p50), median(cps), median(crr),
                failed);
  }
  std::printf("\nCRR servers answered %llu transactions in all\n",
              static_cast<unsigned long long>(served));
  return 0;
}
