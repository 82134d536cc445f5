// pod_to_pod_bench: two pods on one node, side by side without and with the datapath (over
// IPv4, and over IPv6 between the same dual-stack pods): TCP
// request/response rate on one connection (netperf TCP_RR), new connections with one
// request/response each (netperf TCP_CRR: rate, p50, p99) and single-stream throughput (iperf3),
// several runs alternating between the two setups. Prints numbers; never fails on time.
//
//   sudo ./build/bench/pod_to_pod_bench [--seconds N] [--runs R] [--tests rr,crr,stream]
//                                       [--setups bare,datapath,datapath6] [--no-sock-lb]
//                                       [--bpf-stats]
//                                       [--ct-entries N] [--events-rate N]
//                                       [--events-wakeup-bytes N] [--aggregation none|medium]
//
// The last four set the datapath's datapath::Config fields of the same names, for experiments
// (defaults: the agent's).
// --bpf-stats turns the kernel's BPF run-time statistics on during the runs (off again when the
// benchmark ends, even if killed) and prints each datapath program's runs per TCP_CRR
// transaction and ns per run. It adds two clock reads to every program run.
//
// "bare": the same namespaces and veths with no programs; the node's stack routes between the
// pods (IPv4). "datapath": bpf_lxc attached, endpoints and an allow policy programmed, the socket
// LB (bpf_sock) on the benchmark's cgroup as the agent attaches it to pods' (no Service matches),
// events drained. "datapath6": the same, the traffic over the pods' IPv6 addresses (neighbour
// discovery answered by bpf_lxc; the socket LB has no IPv6 hook yet, so it costs IPv6 nothing).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/service/lb_datapath.h"
#include "bench/bench_net.h"
#include "tests/harness/cgroup.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

using namespace cilium;
using namespace std::chrono_literals;
using bench::die;
using bench::median;
using bench::number;
using bench::summary;

namespace {

// Single-stream TCP throughput with iperf3 against a server already started, in Gbit/s
// (receiver side). Retries while the server is still coming up.
Result<double> iperf(testing::Topology& topo, const testing::Pod& client,
                     const std::string& server_ip, const std::string& port, int seconds) {
  Result<RunOutput> out = makeError(ErrorCode::kInternal, "not run");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    out = topo.exec(client.netns,
                    {"iperf3", "-c", server_ip, "-p", port, "-t", std::to_string(seconds), "-J"},
                    std::chrono::seconds(seconds + 30));
    if (out.ok() && out->exit_code == 0) break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  if (!out.ok()) return out.error();
  if (out->exit_code != 0)
    return makeError(ErrorCode::kInternal, "iperf3 failed: {}", out->out.substr(0, 300));
  try {
    auto j = nlohmann::json::parse(out->out);
    return j.at("end").at("sum_received").at("bits_per_second").get<double>() / 1e9;
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInternal, "parse iperf3 output: {}", e.what());
  }
}

// A non-negative integer argument, or exit with usage.
uint32_t count(const char* arg) {
  char* end = nullptr;
  unsigned long v = std::strtoul(arg, &end, 10);
  if (end == arg || *end != '\0' || v > 0xffffffffUL) {
    std::fprintf(stderr, "pod_to_pod_bench: '%s' is not a number\n", arg);
    std::exit(2);
  }
  return static_cast<uint32_t>(v);
}

// The machine's interrupt counts of one kind in /proc/interrupts, summed over CPUs: "IWI" (IRQ
// work: what a ring buffer wakeup raises), "RES" (rescheduling IPIs).
uint64_t interrupts(const std::string& kind) {
  std::ifstream in("/proc/interrupts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string name;
    f >> name;
    if (name != kind + ":") continue;
    uint64_t sum = 0, v;
    while (f >> v) sum += v;
    return sum;
  }
  return 0;
}

// CPU time of this process (all its threads: the client, the server, the event reader, and the
// kernel's packet processing that runs in their syscalls and softirqs), in microseconds.
double processCpuUs() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

// Run-time statistics of BPF programs (BPF_ENABLE_STATS): on only while this object lives, so
// a killed benchmark leaves them off. Adds two clock reads to every program run.
class ProgStats {
 public:
  struct Prog {
    std::string name;
    UniqueFd fd;
    uint64_t ns = 0, cnt = 0;  // at the last snapshot
  };

  static Result<ProgStats> enable() {
    int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (fd < 0) return errnoError(errno, "BPF_ENABLE_STATS");
    ProgStats s;
    s.enabled_ = UniqueFd(fd);
    return s;
  }
  void add(std::string name, int prog_fd) {
    int dup = ::fcntl(prog_fd, F_DUPFD_CLOEXEC, 0);
    if (dup >= 0) progs_.push_back({std::move(name), UniqueFd(dup)});
  }
  // The programs attached to `cgroup` for `type`.
  void addCgroup(const std::string& name, const std::string& cgroup, bpf_attach_type type) {
    UniqueFd cg(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    uint32_t ids[8], n = 8;
    if (!cg || bpf_prog_query(cg.get(), type, 0, nullptr, ids, &n) != 0) return;
    for (uint32_t i = 0; i < n; i++) {
      int fd = bpf_prog_get_fd_by_id(ids[i]);
      if (fd >= 0) progs_.push_back({name, UniqueFd(fd)});
    }
  }
  // Per program: (runs, ns per run) since the last call.
  std::vector<std::tuple<std::string, uint64_t, double>> delta() {
    std::vector<std::tuple<std::string, uint64_t, double>> out;
    for (auto& p : progs_) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(p.fd.get(), &info, &len) != 0) continue;
      uint64_t cnt = info.run_cnt - p.cnt, ns = info.run_time_ns - p.ns;
      p.cnt = info.run_cnt;
      p.ns = info.run_time_ns;
      out.emplace_back(p.name, cnt, cnt ? static_cast<double>(ns) / cnt : 0.0);
    }
    return out;
  }

 private:
  UniqueFd enabled_;
  std::vector<Prog> progs_;
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5, runs = 3;
  std::string tests = "rr,crr,stream", setups = "bare,datapath,datapath6";
  bool sock_lb = true, bpf_stats = false;
  datapath::Config cfg;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = number(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = number(argv[++i]);
    } else if (a == "--tests" && i + 1 < argc) {
      tests = argv[++i];
    } else if (a == "--setups" && i + 1 < argc) {
      setups = argv[++i];
    } else if (a == "--no-sock-lb") {
      sock_lb = false;
    } else if (a == "--bpf-stats") {
      bpf_stats = true;
    } else if (a == "--ct-entries" && i + 1 < argc) {
      cfg.ct_tcp_map_entries = cfg.ct_any_map_entries = count(argv[++i]);
    } else if (a == "--events-rate" && i + 1 < argc) {
      cfg.events_rate = count(argv[++i]);
    } else if (a == "--events-wakeup-bytes" && i + 1 < argc) {
      cfg.events_wakeup_bytes = count(argv[++i]);
    } else if (a == "--aggregation" && i + 1 < argc) {
      std::string v = argv[++i];
      cfg.monitor_aggregation =
          v == "none" ? datapath::MonitorAggregation::kNone : datapath::MonitorAggregation::kMedium;
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--seconds N] [--runs R] [--tests rr,crr,stream] "
          "[--setups bare,datapath,datapath6] [--no-sock-lb] [--bpf-stats] [--ct-entries N] "
          "[--events-rate N] [--events-wakeup-bytes N] [--aggregation none|medium]\n",
          argv[0]);
      return 2;
    }
  }
  bool want_rr = bench::modeWanted(tests, "rr"), want_crr = bench::modeWanted(tests, "crr"),
       want_stream = bench::modeWanted(tests, "stream");
  if (!bench::startPrivilegedBench("pod_to_pod_bench")) return 1;

  auto topo = testing::Topology::create();
  if (!topo.ok()) die("topology", topo.error());
  // Dual stack: the same pods talk over IPv4 or IPv6.
  auto client = (*topo)->addPod("client", "10.200.0.11", "fd00:200::11");
  if (!client.ok()) die("pod", client.error());
  auto server = (*topo)->addPod("server", "10.200.0.12", "fd00:200::12");
  if (!server.ok()) die("pod", server.error());
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) die("pin dir", pin.error());
  cfg.pin_dir = *pin;
  if (auto s = cfg.validate(); !s.ok()) die("config", s.error());
  auto dp = datapath::Datapath::load(cfg);
  if (!dp.ok()) die("load", dp.error());
  auto maps = (*dp)->maps();
  for (auto [pod, id, identity] : {std::tuple{&*client, 1, 1001}, std::tuple{&*server, 2, 1002}}) {
    if (auto s = testing::programEndpoint(maps, *pod, static_cast<uint16_t>(id), identity); !s.ok())
      die("endpoint", s.error());
  }
  if (auto s = testing::programNode(maps, (*topo)->routerIp()); !s.ok()) die("node", s.error());
  auto rule = [](uint32_t id, uint8_t dir) {
    return datapath::PolicyEntry{datapath::policyKey(id, dir, 6, 0, 0), {}};
  };
  if (auto s = maps.policy->replace(1, std::vector{rule(1002, POLICY_EGRESS)}); !s.ok())
    die("policy", s.error());
  if (auto s = maps.policy->replace(2, std::vector{rule(1001, POLICY_INGRESS)}); !s.ok())
    die("policy", s.error());
  // Counts what the datapath reports: per type, and the new connections by conntrack state.
  std::atomic<uint64_t> ev_trace{0}, ev_verdict{0}, ev_drop{0}, ev_new{0}, ev_reopened{0};
  auto reader = (*dp)->openEventReader([&](const cilium_event& ev) {
    if (ev.type == EVENT_TRACE) {
      ev_trace.fetch_add(1, std::memory_order_relaxed);
    } else if (ev.type == EVENT_POLICY_VERDICT) {
      ev_verdict.fetch_add(1, std::memory_order_relaxed);
      if (ev.ct_state == CT_NEW) ev_new.fetch_add(1, std::memory_order_relaxed);
      if (ev.ct_state == CT_REOPENED) ev_reopened.fetch_add(1, std::memory_order_relaxed);
    } else if (ev.type == EVENT_DROP) {
      ev_drop.fetch_add(1, std::memory_order_relaxed);
    }
  });
  if (!reader.ok()) die("events", reader.error());

  // The socket LB on the benchmark's own cgroup, which the process joins for the whole run: its
  // connect4 hook sees the pods' connections in datapath mode (attached there only).
  std::unique_ptr<service::LbDatapath> lb;
  std::unique_ptr<testing::CgroupMembership> member;
  std::string cgroup;
  if (sock_lb) {
    auto cg = (*topo)->cgroupDir();
    if (!cg.ok()) die("cgroup", cg.error());
    cgroup = *cg;
    service::LbDatapathConfig lc;
    lc.pin_dir = *pin;
    auto l = service::LbDatapath::load(lc);
    if (!l.ok()) die("load bpf_sock", l.error());
    lb = std::move(*l);
    auto m = testing::CgroupMembership::join(cgroup);
    if (!m.ok()) die("join cgroup", m.error());
    member = std::move(*m);
  }

  int attached_now = -1;
  auto setMode = [&](bool attached) {
    // Only a change attaches or detaches (datapath and datapath6 share the attachment).
    if (attached_now == static_cast<int>(attached)) return;
    attached_now = attached;
    Status s = runInNetns((*topo)->nodeNetns(), [&]() -> Status {
      for (const auto* p : {&*client, &*server}) {
        if (attached)
          CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(p->host_ifindex));
        else
          CILIUM_RETURN_IF_ERROR((*dp)->detachEndpoint(p->host_ifindex));
      }
      return okStatus();
    });
    if (s.ok() && lb) s = attached ? lb->attachCgroup(cgroup) : lb->detachCgroup();
    if (!s.ok()) die("attach/detach", s.error());
  };

  // Per setup: the server's address, its iperf3 port and its CRR server.
  const std::string server_ip[3] = {server->ip, server->ip, server->ip6};
  const std::string iperf_port[3] = {"5201", "5201", "5202"};
  if (want_stream) {
    for (int f = 1; f <= 2; f++) {
      auto srv =
          (*topo)->spawnIn(server->netns, {"iperf3", "-s", "-B", server_ip[f], "-p", iperf_port[f]},
                           "iperf3-server-" + iperf_port[f]);
      if (!srv.ok()) die("iperf3 server", srv.error());
    }
  }
  std::unique_ptr<bench::CrrServer> crr_servers[2];
  constexpr uint16_t kCrrPort = 7000;
  if (want_crr) {
    if (auto s = bench::prepareCrrClient(client->netns); !s.ok()) die("crr client", s.error());
    for (int f = 0; f < 2; f++) {
      auto srv = bench::CrrServer::start(server->netns, server_ip[f + 1], kCrrPort);
      if (!srv.ok()) die("crr server", srv.error());
      crr_servers[f] = std::move(*srv);
    }
  }

  std::optional<ProgStats> stats;
  if (bpf_stats) {
    auto st = ProgStats::enable();
    if (!st.ok()) die("bpf stats", st.error());
    stats = std::move(*st);
    auto progs = (*dp)->programs();
    stats->add("cil_from_container", bpf_program__fd(progs.from_container));
    stats->add("cil_to_container", bpf_program__fd(progs.to_container));
  }

  std::vector<double> rr[3], gbps[3], crr[3], crr_p50[3], crr_p99[3], crr_cpu[3];
  uint64_t crr_failed[3] = {0, 0, 0};
  uint16_t port = 9000;
  std::atomic<bool> stop{false};
  // The agent's event hub waits the same way: woken by the datapath's wakeup threshold, or
  // after 100 ms. Polls that end early are the wakeups.
  std::atomic<uint64_t> wakeups{0}, polls{0};
  std::thread drain([&] {
    while (!stop) {
      auto t0 = std::chrono::steady_clock::now();
      (void)(*reader)->poll(100ms);
      if (std::chrono::steady_clock::now() - t0 < 90ms) wakeups++;
      polls++;
      polls.notify_all();
    }
  });
  // Returns once the drain thread has read every record committed before the call: a poll
  // that started after it has ended (each poll ends with a consume).
  auto drained = [&] {
    uint64_t target = polls.load() + 2;
    for (uint64_t n = polls.load(); n < target; n = polls.load()) polls.wait(n);
  };
  const char* names[] = {"bare", "datapath", "datapath6"};
  bool sock_stats = false;
  std::printf("pod_to_pod_bench: %d runs of %d s per test and setup; datapath %s the socket LB\n",
              runs, seconds, sock_lb ? "with" : "without");
  for (int r = 0; r < runs; r++) {
    // Alternate which mode goes first, so drift on the machine spreads over both.
    for (int k = 0; k < 3; k++) {
      int mode = (r + k) % 3;  // 0 bare, 1 datapath, 2 datapath over IPv6
      if (!bench::modeWanted(setups, names[mode])) continue;
      setMode(mode >= 1);
      bench::CrrServer* crr_server = want_crr ? crr_servers[mode == 2].get() : nullptr;
      if (stats && mode >= 1 && lb && !sock_stats) {
        // The program attached, known only once attached.
        stats->addCgroup("cil_sock4_connect", cgroup, BPF_CGROUP_INET4_CONNECT);
        sock_stats = true;
      }
      if (stats) (void)stats->delta();
      std::string line = fmt::format("run {} {:<9}", r + 1, names[mode]);
      if (want_rr) {
        auto t = testing::tcpRequestResponseRate(client->netns, server->netns, server_ip[mode],
                                                 port++, std::chrono::seconds(seconds));
        if (!t.ok()) die("tcp_rr", t.error());
        rr[mode].push_back(*t);
        line += fmt::format(" TCP_RR {:7.0f}/s", *t);
      }
      if (want_crr) {
        drained();  // whatever earlier tests left is counted before
        uint64_t served = crr_server->served(), iwi = interrupts("IWI"), res = interrupts("RES"),
                 woken = wakeups.load(), trace0 = ev_trace, verdict0 = ev_verdict, drop0 = ev_drop,
                 new0 = ev_new, reopened0 = ev_reopened;
        double cpu = processCpuUs();
        auto c = bench::measureCrr(client->netns, server_ip[mode], kCrrPort, seconds, 0.5);
        uint64_t tx = std::max<uint64_t>(1, crr_server->served() - served);
        cpu = (processCpuUs() - cpu) / static_cast<double>(tx);
        if (!c.ok()) die("tcp_crr", c.error());
        crr[mode].push_back(c->per_sec);
        crr_p50[mode].push_back(c->p50_us);
        crr_p99[mode].push_back(c->p99_us);
        crr_failed[mode] += c->failed;
        line += fmt::format("  TCP_CRR {:6.0f}/s p50 {:5.1f} us p99 {:6.1f} us max {:6.0f} us",
                            c->per_sec, c->p50_us, c->p99_us, c->max_us);
        if (c->failed) line += fmt::format(" failed {}", c->failed);
        // Per 1000 transactions, the machine's (other work included).
        crr_cpu[mode].push_back(cpu);
        line += fmt::format(" cpu {:5.1f} us", cpu);
        line += fmt::format(" | per 1k: IWI {:.1f} RES {:.0f} reader wakeups {:.2f}",
                            1000.0 * (interrupts("IWI") - iwi) / tx,
                            1000.0 * (interrupts("RES") - res) / tx,
                            1000.0 * (wakeups.load() - woken) / tx);
        if (mode >= 1) {
          drained();
          auto per = [&](uint64_t now, uint64_t before) {
            return static_cast<double>(now - before) / static_cast<double>(tx);
          };
          line += fmt::format(
              "\n    events/transaction: trace {:.2f} policy verdict {:.2f} (new {:.2f}, "
              "reopened {:.2f}) drop {:.2f}",
              per(ev_trace, trace0), per(ev_verdict, verdict0), per(ev_new, new0),
              per(ev_reopened, reopened0), per(ev_drop, drop0));
        }
        if (stats && mode >= 1) {
          for (auto& [name, cnt, ns] : stats->delta())
            line += fmt::format("\n    {:<20} {:6.2f} runs/transaction {:6.0f} ns/run", name,
                                static_cast<double>(cnt) / tx, ns);
        }
      }
      if (want_stream) {
        auto g = iperf(**topo, *client, server_ip[mode], iperf_port[mode], seconds);
        if (!g.ok()) die("iperf3", g.error());
        gbps[mode].push_back(*g);
        line += fmt::format("  iperf3 {:5.2f} Gbit/s", *g);
      }
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  stop = true;
  drain.join();
  setMode(false);
  stats.reset();

  std::printf("\npod to pod on one node, %d runs of %d s each, median (min-max):\n\n", runs,
              seconds);
  std::printf("%-30s %22s %22s %22s %8s %8s\n", "", "bare veth (IPv4)", "datapath IPv4",
              "datapath IPv6", "v4/bare", "v6/v4");
  auto row = [](const char* name, const std::vector<double>* v, int prec) {
    if (v[0].empty() && v[1].empty() && v[2].empty()) return;
    auto ratio = [&](int a, int b) {
      return v[a].empty() || v[b].empty()
                 ? std::string("-")
                 : fmt::format("{:.1f}%", 100 * median(v[a]) / median(v[b]));
    };
    std::printf("%-30s %22s %22s %22s %8s %8s\n", name, summary(v[0], prec).c_str(),
                summary(v[1], prec).c_str(), summary(v[2], prec).c_str(), ratio(1, 0).c_str(),
                ratio(2, 1).c_str());
  };
  row("TCP_RR (transactions/s)", rr, 0);
  row("TCP_CRR (transactions/s)", crr, 0);
  row("TCP_CRR p50 (us)", crr_p50, 1);
  row("TCP_CRR p99 (us)", crr_p99, 1);
  row("TCP_CRR CPU (us/transaction)", crr_cpu, 1);
  row("iperf3 single stream (Gbit/s)", gbps, 2);
  if (want_crr)
    std::printf("\nTCP_CRR failed transactions: bare %lu, datapath %lu, datapath IPv6 %lu\n",
                crr_failed[0], crr_failed[1], crr_failed[2]);
  auto counters = (*dp)->eventCounters();
  if (counters.ok())
    std::printf("events emitted %lu, lost %lu, rate limited %lu\n", counters->emitted,
                counters->lost, counters->rate_limited);
  return 0;
}
