// nodeport_bench: an outside client reaching a NodePort whose backend is on another node (the
// path that SNATs), side by side in one run:
//   direct    the client routed straight to the backend (the wire's floor, no NodePort)
//   iptables  kube-proxy-style: DNAT in PREROUTING and MASQUERADE in POSTROUTING, iptables-nft
//             in the node's namespace
//   tc        our bpf_host on the device (tcx)
//   xdp       our bpf_host with bpf-lb-acceleration=native: XDP in the device's driver
//   direct6, iptables6 (ip6tables-nft), tc6, xdp6: the same over IPv6 (the fabric's
//             2001:db8::/64, backend fd00:250::5)
// Per mode: new-connection latency (p50/p99) and rate, and the rate of one TCP stream. The
// topology is tests/harness/fabric.h, with the wire set up for driver-mode XDP in every mode so
// that all see the same senders. Prints numbers; never fails on time.
//
//   sudo ./build/bench/nodeport_bench [--connects 3000] [--seconds 3] [--modes
//   direct,iptables,tc,xdp,direct6,iptables6,tc6,xdp6]
#include <net/if.h>

#include <cstdio>
#include <string>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/datapath/datapath.h"
#include "agent/service/host_datapath.h"
#include "agent/service/service.h"
#include "bench/bench_net.h"
#include "tests/harness/fabric.h"
#include "tests/harness/netns.h"
#include "tests/harness/service_maps.h"

using namespace cilium;
using bench::die;
using bench::must;
using testing::Fabric;

namespace {

constexpr uint16_t kNodePort = 30080;
constexpr uint16_t kBackendPort = 8080;

Status runWith(const std::vector<std::string>& argv, const std::string& input = "") {
  SpawnOptions o;
  std::string file;
  if (!input.empty()) {
    file = "/tmp/nodeport_bench_rules." + std::to_string(::getpid());
    FILE* f = std::fopen(file.c_str(), "w");
    if (f == nullptr) return errnoError(errno, file);
    std::fputs(input.c_str(), f);
    std::fclose(f);
    o.stdin_path = file;
  }
  auto r = runChecked(argv, o);
  if (!file.empty()) std::remove(file.c_str());
  if (!r.ok()) return r.error();
  return okStatus();
}

void measure(const char* mode, const std::string& client_netns, const std::string& ip,
             uint16_t port, int connects, double seconds, const std::string& note = "") {
  auto c = must(bench::measureConnects(client_netns, ip, port, connects), mode);
  auto gbps = must(bench::streamGbps(client_netns, ip, port, seconds), mode);
  std::printf("| %s | %.1f | %.1f | %.0f | %.0f | %zu | %.2f | %s |\n", mode, c.p50_us, c.p99_us,
              c.max_us, c.per_sec, c.failed, gbps, note.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int connects = 3000;
  double seconds = 3;
  std::string modes = "direct,iptables,tc,xdp,direct6,iptables6,tc6,xdp6";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--connects" && i + 1 < argc) {
      connects = std::max(10, std::atoi(argv[++i]));
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::max(0.5, std::atof(argv[++i]));
    } else if (a == "--modes" && i + 1 < argc) {
      modes = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--connects N] [--seconds S] [--modes "
                   "direct,iptables,tc,xdp,direct6,iptables6,tc6,xdp6]\n",
                   argv[0]);
      return 2;
    }
  }
  auto want = [&](const char* m) { return bench::modeWanted(modes, m); };
  if (!bench::startPrivilegedBench("nodeport_bench")) return 1;

  auto topo = must(testing::Topology::create(211), "topology");
  Fabric net;
  must(net.build(*topo), "fabric");
  must(net.wireForDriverXdp(), "wire");
  must(net.enableIpv6(*topo), "fabric IPv6");
  std::string pin = must(topo->pinDir(), "pin dir");
  auto server = must(
      bench::SinkServer::start(net.remoteNetns(), Fabric::kRemoteBackend, kBackendPort), "backend");
  auto server6 =
      must(bench::SinkServer::start(net.remoteNetns(), Fabric::kRemoteBackend6, kBackendPort),
           "IPv6 backend");
  const std::string out = net.outsideNetns().substr(std::string("/run/netns/").size());
  const std::string node = topo->nodeNetns().substr(std::string("/run/netns/").size());

  std::printf(
      "nodeport_bench: %d connects, %.1f s stream per mode; outside client -> NodePort "
      "%s:%u -> remote backend %s:%u\n\n",
      connects, seconds, Fabric::kNodeIp, kNodePort, Fabric::kRemoteBackend, kBackendPort);
  std::printf("| mode | connect p50 µs | p99 µs | max µs | conns/s | failed | stream Gbit/s | |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");

  if (want("direct")) {
    must(runWith({"ip", "-n", out, "route", "add", "10.250.0.0/24", "via", Fabric::kRemoteNodeIp}),
         "direct route");
    measure("direct", net.outsideNetns(), Fabric::kRemoteBackend, kBackendPort, connects, seconds,
            "no NodePort");
    must(runWith({"ip", "-n", out, "route", "del", "10.250.0.0/24"}), "direct route");
  }
  if (want("direct6")) {
    must(runWith({"ip", "-n", out, "-6", "route", "add", "fd00:250::/64", "via",
                  Fabric::kRemoteNodeIp6}),
         "direct6 route");
    measure("direct6", net.outsideNetns(), Fabric::kRemoteBackend6, kBackendPort, connects, seconds,
            "no NodePort, IPv6");
    must(runWith({"ip", "-n", out, "-6", "route", "del", "fd00:250::/64"}), "direct6 route");
  }

  if (want("tc") || want("xdp") || want("tc6") || want("xdp6")) {
    auto dp = must(datapath::Datapath::load({pin}), "datapath");
    auto host = must(service::HostDatapath::load(pin), "host datapath");
    auto lb = must(testing::openServiceMaps(pin), "service maps");
    service::Manager mgr(lb.maps(), service::ManagerConfig{{*IpAddr::parse(Fabric::kNodeIp),
                                                            *IpAddr::parse(Fabric::kNodeIp6)}});
    service::Service s;  // dual stack: a NodePort on each node address, each to its family
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse("10.96.0.10");
    s.more_cluster_ips = {*IpAddr::parse("fd00:96::10")};
    service::ServicePort p;
    p.name = "http";
    p.proto = service::Protocol::kTcp;
    p.port = 80;
    p.node_port = kNodePort;
    p.backends = {{*IpAddr::parse(Fabric::kRemoteBackend), kBackendPort,
                   service::BackendState::kActive, false},
                  {*IpAddr::parse(Fabric::kRemoteBackend6), kBackendPort,
                   service::BackendState::kActive, false}};
    s.ports.push_back(p);
    must(mgr.upsertService(s), "service");
    int ifindex = must(runInNetnsValue<int>(topo->nodeNetns(),
                                            []() -> Result<int> {
                                              int i = static_cast<int>(::if_nametoindex("ext0"));
                                              if (i == 0) return errnoError(errno, "ext0");
                                              return i;
                                            }),
                       "ext0");
    struct Mode {
      const char* name;
      service::XdpMode xdp;
      const char* node_ip;
      const char* note;
    };
    for (const Mode& m :
         {Mode{"tc", service::XdpMode::kDisabled, Fabric::kNodeIp, "bpf_host, tcx"},
          Mode{"xdp", service::XdpMode::kNative, Fabric::kNodeIp, "bpf_host, XDP in the driver"},
          Mode{"tc6", service::XdpMode::kDisabled, Fabric::kNodeIp6, "bpf_host, tcx, IPv6"},
          Mode{"xdp6", service::XdpMode::kNative, Fabric::kNodeIp6,
               "bpf_host, XDP in the driver, IPv6"}}) {
      if (!want(m.name)) continue;
      must(runInNetns(topo->nodeNetns(),
                      [&] {
                        return host->attachDevice(ifindex, *IpAddr::parse(Fabric::kNodeIp), m.xdp,
                                                  *IpAddr::parse(Fabric::kNodeIp6));
                      }),
           m.name);
      measure(m.name, net.outsideNetns(), m.node_ip, kNodePort, connects, seconds, m.note);
      must(runInNetns(topo->nodeNetns(), [&] { return host->detachDevice(ifindex); }), m.name);
    }
  }

  // Last: the nat table's hooks stay registered in the node's namespace once created.
  // kube-proxy's two rules for the NodePort on `node_ip` (a /32 or /128) to `backend`, loaded by
  // `restore` (iptables-nft-restore or ip6tables-nft-restore).
  auto kubeProxy = [&](const char* mode, const char* restore, const std::string& node_ip,
                       const std::string& backend, const char* note) {
    const bool v6 = node_ip.find(':') != std::string::npos;
    std::string rules = fmt::format(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -d {0}/{1} -p tcp -m tcp --dport {2} -j DNAT --to-destination {3}:{4}\n"
        "-A POSTROUTING -d {5}/{1} -p tcp -m tcp --dport {4} -j MASQUERADE\nCOMMIT\n",
        node_ip, v6 ? 128 : 32, kNodePort, v6 ? "[" + backend + "]" : backend, kBackendPort,
        backend);
    must(runWith({"ip", "netns", "exec", node, restore}, rules), mode);
    measure(mode, net.outsideNetns(), node_ip, kNodePort, connects, seconds, note);
  };
  if (want("iptables"))
    kubeProxy("iptables", "iptables-nft-restore", Fabric::kNodeIp, Fabric::kRemoteBackend,
              "kube-proxy style: DNAT + MASQUERADE, iptables-nft");
  if (want("iptables6"))
    kubeProxy("iptables6", "ip6tables-nft-restore", Fabric::kNodeIp6, Fabric::kRemoteBackend6,
              "kube-proxy style, IPv6: DNAT + MASQUERADE, ip6tables-nft");
  std::printf("\nservers received %.1f MiB in all\n",
              static_cast<double>(server->bytes() + server6->bytes()) / 1048576);
  return 0;
}
