// service_lb_bench: new-connection cost from a pod to a Service as the number of Services grows,
// side by side in one run: our socket LB (bpf_sock on the bench's own cgroup), our per-packet LB
// (bpf_lxc on the pods' veths, for a client outside the socket-LB cgroup) and kube-proxy-style
// iptables rules (iptables-nft and iptables-legacy, restored inside the client
// pod's namespace only) for the same Services; plus the time to program N Services into the LB
// maps and to apply one change at N. Prints numbers; never fails on time. The modes sock6 and
// packet6 measure the same over IPv6 (IPv6 ClusterIPs, the pods' IPv6 addresses); IPv6 between
// the pods needs bpf_lxc (its neighbour discovery), so sock6 runs with bpf_lxc attached and
// prints an IPv4 row under the same conditions (sock4lxc) next to it.
//
//   sudo ./build/bench/service_lb_bench [--counts 10,1000,10000,100000] [--connects 2000]
//                                       [--modes sock,packet,nft,legacy,sock6,packet6]
//
// Each connection: socket(), blocking connect() to the last Service's ClusterIP (the worst case
// for iptables, which walks KUBE-SERVICES in order), close() with SO_LINGER 0 (RST, no
// TIME_WAIT). The server pod accepts and closes. Latency is per connect() call.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/service/lb_datapath.h"
#include "agent/service/service.h"
#include "bench/bench_net.h"
#include "tests/harness/cgroup.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "service_lb_bench: %s: %s\n", what.c_str(), e.toString().c_str());
  std::exit(1);
}

// The i-th Service's ClusterIP (0-based): 10.96.0.0/12 counted upwards from 10.96.0.1.
std::string vip(uint32_t i) {
  uint32_t a = 0x0a600000u + i + 1;
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

// The i-th IPv6 Service's ClusterIP: fd00:96::/64 counted upwards from fd00:96::1.
std::string vip6(uint32_t i) {
  uint32_t a = i + 1;
  return fmt::format("fd00:96::{:x}:{:x}", a >> 16, a & 0xffff);
}

// kube-proxy's iptables-restore input for n Services (one port, one endpoint each), as
// machine.md describes it: KUBE-SERVICES -> KUBE-SVC-x -> KUBE-SEP-x DNAT.
std::string kubeProxyRules(uint32_t n, const std::string& backend, uint16_t bport) {
  std::ostringstream o;
  o << "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
       ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n";
  for (uint32_t i = 0; i < n; i++)
    o << ":KUBE-SVC-" << i << " - [0:0]\n:KUBE-SEP-" << i << " - [0:0]\n";
  o << "-A OUTPUT -j KUBE-SERVICES\n-A PREROUTING -j KUBE-SERVICES\n";
  for (uint32_t i = 0; i < n; i++) {
    o << "-A KUBE-SERVICES -d " << vip(i) << "/32 -p tcp -m comment --comment \"default/svc" << i
      << ":http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-" << i << "\n";
    o << "-A KUBE-SVC-" << i << " -j KUBE-SEP-" << i << "\n";
    o << "-A KUBE-SEP-" << i << " -p tcp -m tcp -j DNAT --to-destination " << backend << ":"
      << bport << "\n";
  }
  o << "COMMIT\n";
  return o.str();
}

std::vector<uint32_t> parseCounts(const std::string& s) {
  std::vector<uint32_t> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    char* end = nullptr;
    unsigned long v = std::strtoul(part.c_str(), &end, 10);
    if (end == part.c_str() || *end != '\0' || v < 1 || v > 200000) {
      std::fprintf(stderr, "service_lb_bench: count '%s' is not in 1..200000\n", part.c_str());
      std::exit(2);
    }
    out.push_back(static_cast<uint32_t>(v));
  }
  return out;
}

// A map that accepts everything and keeps nothing: isolates the Manager's own bookkeeping from
// the kernel's map writes when timing the programming of N Services.
template <typename K, typename V>
class NullMap final : public bpf::Map<K, V> {
 public:
  const std::string& name() const override { return name_; }
  uint32_t maxEntries() const override { return 1u << 30; }
  Result<std::optional<V>> lookup(const K&) const override { return std::optional<V>(); }
  Status update(const K&, const V&, bpf::UpdateFlag) override { return okStatus(); }
  Result<bool> remove(const K&) override { return false; }
  Status forEach(const std::function<bool(const K&, const V&)>&) const override {
    return okStatus();
  }
  Status updateBatch(std::span<const K>, std::span<const V>) override { return okStatus(); }

 private:
  std::string name_ = "null";
};

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Page faults of this process so far: first touches of new memory, which on a VM cost far more
// than the work done on the memory (docs/benchmarks.md).
long minorFaults() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

// The transparent huge page mode ("always", "madvise" or "never"): the Manager's arena asks for
// huge pages, which the kernel grants only in the first two.
std::string thpMode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  auto a = line.find('['), b = line.find(']');
  return a == std::string::npos || b == std::string::npos ? "unknown"
                                                          : line.substr(a + 1, b - a - 1);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint32_t> counts{10, 1000, 10000, 100000};
  int connects = 2000;
  std::string modes = "sock,packet,nft,legacy";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--counts" && i + 1 < argc) {
      counts = parseCounts(argv[++i]);
    } else if (a == "--connects" && i + 1 < argc) {
      connects = std::max(10, std::atoi(argv[++i]));
    } else if (a == "--modes" && i + 1 < argc) {
      modes = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--counts 10,1000,...] [--connects N] [--modes sock,packet,nft,legacy]\n",
          argv[0]);
      return 2;
    }
  }
  auto want = [&](const char* m) { return bench::modeWanted(modes, m); };
  if (!bench::startPrivilegedBench("service_lb_bench")) return 1;

  auto topo = testing::Topology::create(202);
  if (!topo.ok()) die("topology", topo.error());
  // Dual stack: the IPv6 modes use the second addresses.
  auto client = (*topo)->addPod("client", "10.202.0.11", "fd00:202::11");
  if (!client.ok()) die("pod", client.error());
  auto server = (*topo)->addPod("server", "10.202.0.12", "fd00:202::12");
  if (!server.ok()) die("pod", server.error());
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) die("pin dir", pin.error());
  auto cg = (*topo)->cgroupDir();
  if (!cg.ok()) die("cgroup", cg.error());

  // The server: accept and close, until the bench ends.
  auto lfd = testing::listenTcp(server->netns, server->ip, 8080);
  if (!lfd.ok()) die("listen", lfd.error());
  // A deep accept queue: on a busy 2-core machine the acceptor is sometimes descheduled, and an
  // overflow drops a SYN that then costs a 1 s retransmission.
  if (::listen(lfd->get(), 4096) != 0) die("listen", errnoError(errno, "listen backlog"));
  auto lfd6 = testing::listenTcp(server->netns, server->ip6, 8080);
  if (!lfd6.ok()) die("listen", lfd6.error());
  if (::listen(lfd6->get(), 4096) != 0) die("listen", errnoError(errno, "listen backlog"));
  std::atomic<bool> stop{false};
  // Blocking accepts: a poll loop lets the accept queue overflow under a fast client, and the
  // dropped SYNs then cost a 1 s retransmission each.
  auto acceptLoop = [&](int fd) {
    while (!stop) {
      int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) ::close(c);
    }
  };
  std::thread acceptor(acceptLoop, lfd->get());
  std::thread acceptor6(acceptLoop, lfd6->get());

  std::printf("service_lb_bench: %d connects per point, target = the last Service, THP %s\n",
              connects, thpMode().c_str());
  // Direct to the pod, no Service: the floor every mode pays.
  auto direct = bench::measureConnects(client->netns, server->ip, 8080, connects);
  if (!direct.ok()) die("direct", direct.error());
  if (std::getenv("BENCH_NSTAT")) {
    for (auto* pod : {&*server, &*client}) {
      auto r = (*topo)->exec(pod->netns, {"nstat", "-az"});
      if (r.ok()) {
        std::istringstream in(r->out);
        std::string line;
        while (std::getline(in, line))
          if (line.find(" 0 ") == std::string::npos && (line.find("Tcp") != std::string::npos))
            std::printf("%s %s\n", pod->name.c_str(), line.c_str());
      }
    }
  }
  std::printf("%-8s %9s %10s %10s %12s %8s %s\n", "mode", "services", "p50_us", "p99_us", "conns/s",
              "failed", "setup");
  std::printf("%-8s %9s %10.1f %10.1f %12.0f %8zu\n", "direct", "-", direct->p50_us, direct->p99_us,
              direct->per_sec, direct->failed);

  // Per-packet LB: bpf_lxc with its maps in a pin directory of its own, the LB maps shared with
  // bpf_sock (loaded for its batched map writes, never attached). The programs are attached to
  // the pods' veths only while this mode measures, so the other modes see bare veths. Services
  // accumulate over the counts (counts ascend), so N Services are in the maps at each point.
  std::unique_ptr<datapath::Datapath> pkt_dp;
  std::unique_ptr<service::LbDatapath> pkt_lb;
  std::unique_ptr<service::Manager> pkt_mgr;
  uint32_t pkt_programmed = 0, pkt6_programmed = 0;
  bool pkt_direct_done = false, pkt_direct6_done = false;
  if (want("packet") || want("packet6") || want("sock6")) {
    std::string dir = *pin + "/packet";
    if (::mkdir(dir.c_str(), 0700) != 0) die("mkdir", errnoError(errno, dir));
    auto dp = datapath::Datapath::load({dir});
    if (!dp.ok()) die("load bpf_lxc", dp.error());
    pkt_dp = std::move(*dp);
    auto maps = pkt_dp->maps();
    std::vector<datapath::PolicyEntry> open{{datapath::policyKey(0, POLICY_INGRESS, 0, 0, 0), {}},
                                            {datapath::policyKey(0, POLICY_EGRESS, 0, 0, 0), {}}};
    uint16_t id = 1;
    for (auto* pod : {&*client, &*server}) {
      if (auto s = testing::programEndpoint(maps, *pod, id, 1000 + id); !s.ok())
        die("endpoint", s.error());
      if (auto s = maps.policy->replace(id, open); !s.ok()) die("policy", s.error());
      id++;
    }
    if (auto s = testing::programNode(maps, (*topo)->routerIp()); !s.ok()) die("node", s.error());
    service::LbDatapathConfig lc;
    lc.pin_dir = dir;
    auto lb = service::LbDatapath::load(lc);
    if (!lb.ok()) die("load bpf_sock", lb.error());
    pkt_lb = std::move(*lb);
    pkt_mgr = std::make_unique<service::Manager>(pkt_lb->maps(), service::ManagerConfig{});
  }
  auto pktAttach = [&](bool on) {
    auto s = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
      for (auto* pod : {&*client, &*server})
        CILIUM_RETURN_IF_ERROR(on ? pkt_dp->attachEndpoint(pod->host_ifindex)
                                  : pkt_dp->detachEndpoint(pod->host_ifindex));
      return okStatus();
    });
    if (!s.ok()) die("attach bpf_lxc", s.error());
  };

  // One point of the socket LB: fresh maps, N Services of the family, connects to the last one
  // from inside the socket-LB cgroup (with bpf_lxc on the veths when `with_lxc`).
  int round = 0;
  auto runSock = [&](uint32_t n, bool v6, bool with_lxc, const char* label) {
    // Fresh maps per count: a pin directory of its own.
    std::string dir = fmt::format("{}/n{}", *pin, round++);
    if (::mkdir(dir.c_str(), 0700) != 0) die("mkdir", errnoError(errno, dir));
    service::LbDatapathConfig cfg;
    cfg.pin_dir = dir;
    auto dp = service::LbDatapath::load(cfg);
    if (!dp.ok()) die("load bpf_sock", dp.error());
    if (auto s = (*dp)->attachCgroup(*cg); !s.ok()) die("attach", s.error());
    service::Manager mgr((*dp)->maps(), {});
    std::vector<service::Service> svcs(n);
    auto backend = *IpAddr::parse(v6 ? server->ip6 : server->ip);
    for (uint32_t i = 0; i < n; i++) {
      auto& s = svcs[i];
      s.name = {"default", "svc" + std::to_string(i)};
      s.cluster_ip = *IpAddr::parse(v6 ? vip6(i) : vip(i));
      service::ServicePort p;
      p.name = "http";
      p.port = 80;
      p.backends = {{backend, 8080, service::BackendState::kActive, true}};
      s.ports.push_back(std::move(p));
    }
    long f0 = minorFaults();
    auto t0 = Clock::now();
    if (auto s = mgr.upsertServices(svcs); !s.ok()) die("program", s.error());
    double program_ms = msSince(t0);
    long program_faults = minorFaults() - f0;
    // The same Services into maps that keep nothing: the Manager's share of the time
    // (measured second, so both runs find the process heap already grown).
    NullMap<lb4_key, lb4_service> ns;
    NullMap<lb4_slot_key, uint32_t> nsl;
    NullMap<uint32_t, lb4_backend> nb;
    NullMap<uint32_t, lb4_reverse_nat> nr;
    NullMap<lb6_key, lb4_service> ns6;
    NullMap<uint32_t, lb6_backend> nb6;
    NullMap<uint32_t, lb6_reverse_nat> nr6;
    double manager_ms = 0;
    {
      service::Manager null_mgr({&ns, &nsl, &nb, &nr, nullptr, &ns6, &nb6, &nr6}, {});
      auto n0 = Clock::now();
      if (auto s = null_mgr.upsertServices(svcs); !s.ok()) die("program (null)", s.error());
      manager_ms = msSince(n0);
    }
    // One change at n: the last Service gets a second backend, then loses it again.
    std::vector<double> change_us;
    for (int k = 0; k < 50; k++) {
      auto& s = svcs[n - 1];
      if (k % 2 == 0)
        s.ports[0].backends.push_back(
            {backend, static_cast<uint16_t>(8081 + k), service::BackendState::kActive, true});
      else
        s.ports[0].backends.pop_back();
      auto c0 = Clock::now();
      if (auto st = mgr.upsertService(s); !st.ok()) die("change", st.error());
      change_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - c0).count());
    }
    std::sort(change_us.begin(), change_us.end());
    if (svcs[n - 1].ports[0].backends.size() != 1) {
      svcs[n - 1].ports[0].backends.resize(1);
      (void)mgr.upsertService(svcs[n - 1]);
    }
    Result<bench::ConnectStats> l = makeError(ErrorCode::kInternal, "not run");
    {
      auto member = testing::CgroupMembership::join(*cg);
      if (!member.ok()) die("join cgroup", member.error());
      if (with_lxc) pktAttach(true);
      l = bench::measureConnects(client->netns, v6 ? vip6(n - 1) : vip(n - 1), 80, connects);
      if (with_lxc) pktAttach(false);
    }
    if (!l.ok()) die("connect (sock)", l.error());
    // An agent restart at n: a new Manager reads the maps back (restore), the source
    // re-announces every Service (resync: nothing changed, so nothing is written), and the
    // restored frontends nobody claimed are pruned (none).
    double restore_ms = 0, resync_ms = 0;
    {
      service::Manager again((*dp)->maps(), {});
      auto r0 = Clock::now();
      if (auto st = again.restore(); !st.ok()) die("restore", st.error());
      restore_ms = msSince(r0);
      r0 = Clock::now();
      if (auto st = again.upsertServices(svcs); !st.ok()) die("resync", st.error());
      if (auto st = again.pruneRestored(); !st.ok()) die("prune", st.error());
      resync_ms = msSince(r0);
    }
    std::printf(
        "%-8s %9u %10.1f %10.1f %12.0f %8zu program=%.1fms (%ld faults; manager %.1fms) "
        "change_p50=%.0fus restart: restore=%.1fms resync=%.1fms\n",
        label, n, l->p50_us, l->p99_us, l->per_sec, l->failed, program_ms, program_faults,
        manager_ms, change_us[change_us.size() / 2], restore_ms, resync_ms);
    std::fflush(stdout);
    if (auto s = (*dp)->detachCgroup(); !s.ok()) die("detach", s.error());
  };

  for (uint32_t n : counts) {
    if (want("sock")) runSock(n, false, false, "sock");
    if (want("sock6")) {
      if (!pkt_direct6_done) {
        // The floor of the IPv6 modes: pod to pod over IPv6 through bpf_lxc, no Service.
        pktAttach(true);
        auto d = bench::measureConnects(client->netns, server->ip6, 8080, connects);
        pktAttach(false);
        if (!d.ok()) die("connect (IPv6, direct)", d.error());
        std::printf("%-8s %9s %10.1f %10.1f %12.0f %8zu\n", "pkt-dir6", "-", d->p50_us, d->p99_us,
                    d->per_sec, d->failed);
        pkt_direct6_done = true;
      }
      runSock(n, false, true, "sock4lxc");
      runSock(n, true, true, "sock6");
    }
    // Per-packet LB, one family: programs Services up to n, measures the pod-to-pod floor once,
    // then connects to the last VIP.
    auto runPacket = [&](bool v6) {
      const char* mode = v6 ? "packet6" : "packet";
      uint32_t& programmed = v6 ? pkt6_programmed : pkt_programmed;
      bool& direct_done = v6 ? pkt_direct6_done : pkt_direct_done;
      const std::string& server_ip = v6 ? server->ip6 : server->ip;
      std::vector<service::Service> svcs;
      auto backend = *IpAddr::parse(server_ip);
      for (uint32_t i = programmed; i < n; i++) {
        service::Service s;
        s.name = {"default", (v6 ? "svc6-" : "svc") + std::to_string(i)};
        s.cluster_ip = *IpAddr::parse(v6 ? vip6(i) : vip(i));
        service::ServicePort p;
        p.name = "http";
        p.port = 80;
        p.backends = {{backend, 8080, service::BackendState::kActive, true}};
        s.ports.push_back(std::move(p));
        svcs.push_back(std::move(s));
      }
      if (auto s = pkt_mgr->upsertServices(svcs); !s.ok())
        die(fmt::format("program ({})", mode), s.error());
      programmed = std::max(programmed, n);
      pktAttach(true);
      if (!direct_done) {
        // The floor of this mode: pod to pod through bpf_lxc, no Service.
        auto d = bench::measureConnects(client->netns, server_ip, 8080, connects);
        if (!d.ok()) die(fmt::format("connect ({}, direct)", mode), d.error());
        std::printf("%-8s %9s %10.1f %10.1f %12.0f %8zu\n", v6 ? "pkt-dir6" : "pkt-dir", "-",
                    d->p50_us, d->p99_us, d->per_sec, d->failed);
        direct_done = true;
      }
      auto l = bench::measureConnects(client->netns, v6 ? vip6(n - 1) : vip(n - 1), 80, connects);
      pktAttach(false);
      if (!l.ok()) die(fmt::format("connect ({})", mode), l.error());
      std::printf("%-8s %9u %10.1f %10.1f %12.0f %8zu\n", mode, n, l->p50_us, l->p99_us,
                  l->per_sec, l->failed);
      std::fflush(stdout);
    };
    if (want("packet")) runPacket(false);
    if (want("packet6")) runPacket(true);
    for (const char* tool : {"nft", "legacy"}) {
      if (!want(tool)) continue;
      std::string rules = fmt::format("{}/rules-{}.txt", (*topo)->tmpDir(), n);
      {
        std::ofstream out(rules);
        out << kubeProxyRules(n, server->ip, 8080);
      }
      std::string restore = std::string("iptables-") + tool + "-restore";
      auto t0 = Clock::now();
      auto r = (*topo)->exec(client->netns, {restore, rules}, std::chrono::seconds(600));
      if (!r.ok() || r->exit_code != 0)
        die(restore, r.ok() ? Error(ErrorCode::kInternal, r->out + r->err) : r.error());
      double restore_ms = msSince(t0);
      auto l = bench::measureConnects(client->netns, vip(n - 1), 80, connects);
      if (!l.ok()) die(std::string("connect (") + tool + ")", l.error());
      std::printf("%-8s %9u %10.1f %10.1f %12.0f %8zu restore=%.0fms\n", tool, n, l->p50_us,
                  l->p99_us, l->per_sec, l->failed, restore_ms);
      std::fflush(stdout);
      // Empty the table again so the next mode and count start clean.
      std::string empty = fmt::format("{}/rules-empty.txt", (*topo)->tmpDir());
      {
        std::ofstream out(empty);
        out << "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
               ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
      }
      (void)(*topo)->exec(client->netns, {restore, empty}, std::chrono::seconds(600));
    }
  }
  stop = true;
  ::shutdown(lfd->get(), SHUT_RDWR);  // wakes the blocked accepts
  ::shutdown(lfd6->get(), SHUT_RDWR);
  acceptor.join();
  acceptor6.join();
  return 0;
}
