// datapath_prog_bench: nanoseconds per packet of bpf_lxc under BPF_PROG_TEST_RUN, for the
// datapath's main paths, next to an empty tc program, with 1k and 100k ipcache entries and 10k
// policy entries per endpoint. Prints numbers; never passes or fails on time.
//
//   sudo ./build/bench/datapath_prog_bench [--repeat N] [--runs R] [--samples]
//
// Each round loads a fresh datapath per ipcache size and measures every row once; a row's figure
// is its fastest round. On our VMs the same code measures in two modes, about 1.5x apart, in
// spells of seconds (another tenant on the vCPU's sibling thread, by its shape); consecutive runs
// of one row, medianed, reported whichever mode the row fell into (the IPv6 rows read 60-80 %
// above IPv4 in one column and within 10 % in the other). Rounds spread each row's samples over
// the whole run and the minimum is the cost on an uncontended core; --samples prints them all.
//
// Paths the programs change between repeats (local delivery decrements the TTL; a new-flow run
// must never see its own earlier connection) go through bench_driver, which restores the TTL or
// advances the ports and tail-calls bpf_lxc; their overhead is the "driver" baseline row.
#include <arpa/inet.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/bpf/fs.h"
#include "agent/bpf/libbpf_log.h"
#include "agent/bpf/skeleton.h"
#include "agent/bpf/test_run.h"
#include "agent/common/inet.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/conntrack.h"
#include "agent/datapath/datapath.h"
#include "bench_driver.skel.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/netns.h"
#include "tests/harness/packet.h"
#include "tests/harness/privileges.h"

using namespace cilium;
using testing::PacketBuilder;

namespace {

constexpr uint32_t kIdentityA = 1001, kIdentityB = 1002;
constexpr const char* kAllowedRemote = "10.64.0.1";  // ipcache identity 5001, allowed
constexpr const char* kDeniedRemote = "10.64.0.2";   // ipcache identity 5002, not allowed
// IPv6 twins (fd00:64::<i> as 10.64.x.y): the same identities, as many ipcache entries.
constexpr const char* kAllowedRemote6 = "fd00:64::1";
constexpr const char* kDeniedRemote6 = "fd00:64::2";
constexpr uint32_t kPolicyEntries = 10000;
// Repeats of the reopened row at most: two closing entries per repeat must fit in the default
// conntrack table (512k) with room to spare.
constexpr uint32_t kReopenedMax = 200000;

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "datapath_prog_bench: %s: %s\n", what.c_str(), e.toString().c_str());
  std::exit(1);
}

template <typename T>
T check(Result<T> r, const std::string& what) {
  if (!r.ok()) die(what, r.error());
  return std::move(*r);
}
void check(const Status& s, const std::string& what) {
  if (!s.ok()) die(what, s.error());
}

datapath::PolicyEntry allow(uint32_t identity, uint8_t dir, uint8_t proto, uint16_t port) {
  return {datapath::policyKey(identity, dir, proto, port, port ? 16 : 0), {}};
}

struct Row {
  std::string name;
  bool driven = false;                       // measured through bench_driver
  std::vector<std::vector<double>> samples;  // per ipcache size, one per round
  std::vector<double> ns;                    // per ipcache size: the fastest of its samples
};

// How a row is measured.
struct How {
  bool vary_ports = false;             // the driver advances the ports word per repeat
  bool reset_ttl = false;              // the driver restores the TTL per repeat
  uint16_t* sport_base = nullptr;      // a fresh range of source ports per run from here
  uint32_t repeat = 0;                 // 0: the benchmark's
  const testing::Pod* from = nullptr;  // whose veth the packet enters (default: a's)
  std::function<void(uint16_t sport)> before_run;  // with sport_base: before each run
};

class Bench {
 public:
  Bench(uint32_t repeat, int runs, uint32_t events_rate, bool drain)
      : repeat_(repeat), runs_(runs), events_rate_(events_rate), drain_(drain) {}

  void setUp() {
    topo_ = check(testing::Topology::create(), "topology");
    a_ = check(topo_->addPod("a", "10.200.0.11", "fd00:200::11"), "pod a");
    b_ = check(topo_->addPod("b", "10.200.0.12", "fd00:200::12"), "pod b");
    auto opened = check(bpf::OpenedSkeleton<bench_driver>::open(), "open bench_driver");
    driver_ = std::make_unique<bpf::LoadedSkeleton<bench_driver>>(
        check(std::move(opened).load(), "load bench_driver"));
  }

  // Loads a fresh datapath (empty conntrack) in its own pin dir with `ipcache_entries` entries
  // and the policies; the previous one is unloaded and its pins removed.
  void loadDatapath(uint32_t ipcache_entries, int round) {
    drained_ = 0;
    reader_.reset();
    dp_.reset();
    if (!dp_dir_.empty()) check(bpf::removePinDir(dp_dir_), "remove pin dir");
    dp_dir_ = check(topo_->pinDir(), "pin dir") + "/ipcache" + std::to_string(ipcache_entries) +
              "-r" + std::to_string(round);
    const std::string& dir = dp_dir_;
    check(bpf::makePinDir(dir), "pin dir");
    datapath::Config cfg;
    cfg.pin_dir = dir;
    cfg.events_rate = events_rate_;
    if (ct_entries_ != 0) cfg.ct_tcp_map_entries = cfg.ct_any_map_entries = ct_entries_;
    dp_ = check(datapath::Datapath::load(cfg), "load datapath");
    auto maps = dp_->maps();
    check(testing::programEndpoint(maps, a_, 11, kIdentityA), "endpoint a");
    check(testing::programEndpoint(maps, b_, 12, kIdentityB), "endpoint b");
    check(testing::programNode(maps, topo_->routerIp()), "node");
    // Remote pods 10.64.x.y, identities 5000..5999; with the local entries above.
    std::vector<ipcache_key> keys;
    std::vector<remote_endpoint_info> values;
    uint32_t base = ntohl(check(datapath::parseIpv4("10.64.0.0"), "ip"));
    auto base6 = check(IpAddr::parse("fd00:64::"), "ip");
    for (uint32_t i = 0; i < ipcache_entries; i++) {
      keys.push_back(datapath::ipcacheKeyV4(htonl(base + i), 32));
      keys.push_back(datapath::ipcacheKey(IpPrefix::host(base6.plus(i))));
      remote_endpoint_info v{};
      v.sec_identity = 5000 + i % 1000;
      values.push_back(v);
      values.push_back(v);
    }
    check(maps.ipcache->updateBatch(keys, values), "fill ipcache");

    // 10k entries per endpoint: identities that never match, around the ones that do.
    std::vector<datapath::PolicyEntry> pa, pb;
    for (uint32_t i = 0; i < kPolicyEntries - 2; i++) {
      pa.push_back(allow(100000 + i, POLICY_EGRESS, 6, static_cast<uint16_t>(1 + i % 60000)));
      pb.push_back(allow(100000 + i, POLICY_INGRESS, 6, static_cast<uint16_t>(1 + i % 60000)));
    }
    pa.push_back(allow(5001, POLICY_EGRESS, 6, 0));
    pa.push_back(allow(kIdentityB, POLICY_EGRESS, 6, 0));
    pb.push_back(allow(kIdentityA, POLICY_INGRESS, 6, 0));
    pb.push_back(allow(0, POLICY_EGRESS, 0, 0));
    check(maps.policy->replace(11, pa), "policy a");
    check(maps.policy->replace(12, pb), "policy b");
    check(datapath::bumpPolicyRevision(*maps.runtime_config), "revision");

    uint32_t key = 0;
    int fd = bpf_program__fd(dp_->programs().from_container);
    if (bpf_map_update_elem(bpf_map__fd((*driver_)->maps.bench_target), &key, &fd, BPF_ANY) != 0)
      die("bench_target", errnoError(errno, "insert bpf_lxc"));
    reader_ = check(dp_->openEventReader([this](const cilium_event&) { drained_++; }), "reader");
  }

  // The kernel's mean ns per repeat of one run. Runs on a thread in the node namespace. The event
  // ring is drained meanwhile, as the agent does, so emitting events costs what it costs in
  // production.
  double measure(const bpf_program* prog, const std::vector<uint8_t>& pkt, const How& how = {}) {
    uint32_t repeat = how.repeat ? how.repeat : repeat_;
    uint16_t* sport_base = how.sport_base;
    (*driver_)->bss->vary_ports = how.vary_ports;
    (*driver_)->bss->reset_ttl = how.reset_ttl;
    std::atomic<bool> stop{false};
    std::thread drain([&] {
      while (drain_ && !stop) (void)reader_->poll(std::chrono::milliseconds(10));
    });
    std::vector<uint8_t> p = pkt;
    if (sport_base != nullptr) {
      // A fresh range of tuples: the ports word advances by one per repeat.
      uint16_t sport = *sport_base;
      *sport_base = static_cast<uint16_t>(*sport_base + repeat / 65536 + 2);
      const size_t l4 = 14 + (p[12] == 0x86 ? 40 : 20);
      p[l4] = static_cast<uint8_t>(sport >> 8);
      p[l4 + 1] = static_cast<uint8_t>(sport);
      if (how.before_run) how.before_run(sport);
    }
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>((how.from ? how.from : &a_)->host_ifindex);
    auto res = bpf::testRun(prog, p, {.repeat = repeat, .ctx = ctx});
    stop = true;
    drain.join();
    if (!res.ok()) die("test run", res.error());
    last_retval_ = res->retval;
    return res->duration_ns;
  }

  const std::string& nodeNetns() const { return topo_->nodeNetns(); }

  void run() {
    const uint32_t sizes[] = {1000, 100000};
    std::vector<Row> rows = {
        {"empty tc program", false, {}},
        {"driver + tail call to an empty program", true, {}},
        {"established, pod -> remote pod (to stack)", false, {}},
        {"established, pod -> pod (local delivery)", true, {}},
        {"new flow, pod -> remote pod (1 CT create)", true, {}},
        {"new flow, pod -> pod (2 CT creates)", true, {}},
        {"denied, pod -> remote pod (policy deny)", false, {}},
        {"established reply, pod -> pod (local delivery)", true, {}},
        {"reopened, pod -> pod (SYN on 2 closing entries)", true, {}},
        {"IPv6 established, pod -> remote pod (to stack)", false, {}},
        {"IPv6 established, pod -> pod (local delivery)", true, {}},
        {"IPv6 new flow, pod -> pod (2 CT creates)", true, {}},
        {"IPv6 denied, pod -> remote pod (policy deny)", false, {}},
    };
    for (auto& r : rows) r.samples.resize(std::size(sizes));
    std::vector<std::string> checks;
    for (int round = 0; round < runs_; round++)
      for (size_t si = 0; si < std::size(sizes); si++) {
        const uint32_t size = sizes[si];
        loadDatapath(size, round);
        const bpf_program* lxc = dp_->programs().from_container;
        const bpf_program* driver = (*driver_)->progs.bench_driver;
        const bpf_program* empty = (*driver_)->progs.bench_empty;
        auto tcpFrom = [&](const testing::Pod& src, const char* dst, uint16_t sport, uint16_t dport,
                           uint8_t flags) {
          const bool v6 = std::string_view(dst).find(':') != std::string_view::npos;
          return PacketBuilder()
              .eth(testing::mac(src.mac), testing::mac(src.host_mac))
              .ip(v6 ? src.ip6 : src.ip, dst)
              .tcp(sport, dport, flags)
              .payload(64)
              .build();
        };
        auto tcp = [&](const char* dst, uint16_t sport, uint8_t flags) {
          return tcpFrom(a_, dst, sport, 80, flags);
        };
        auto expect = [&](int want, const char* what) {
          std::string c = fmt::format("{} (ipcache {}): return code {} instead of {}", what, size,
                                      last_retval_, want);
          if (last_retval_ != want && std::find(checks.begin(), checks.end(), c) == checks.end())
            checks.push_back(std::move(c));
        };
        // The baseline: nothing at all, and the driver's own share.
        uint32_t empty_key = 0;
        int empty_fd = bpf_program__fd(empty);
        rows[0].samples[si].push_back(measure(empty, tcp(kAllowedRemote, 1000, 0x10)));
        bpf_map_update_elem(bpf_map__fd((*driver_)->maps.bench_target), &empty_key, &empty_fd,
                            BPF_ANY);
        uint16_t scratch = 2000;
        rows[1].samples[si].push_back(
            measure(driver, tcp(kAllowedRemote, 1000, 0x10),
                    {.vary_ports = true, .reset_ttl = true, .sport_base = &scratch}));
        int lxc_fd = bpf_program__fd(lxc);
        bpf_map_update_elem(bpf_map__fd((*driver_)->maps.bench_target), &empty_key, &lxc_fd,
                            BPF_ANY);

        // Established: open the connection once, then measure its packets.
        (void)measureOnce(lxc, tcp(kAllowedRemote, 40000, 0x02));
        rows[2].samples[si].push_back(measure(lxc, tcp(kAllowedRemote, 40000, 0x10)));
        expect(TC_ACT_OK, "established to stack");
        (void)measureOnce(lxc, tcp(b_.ip.c_str(), 40001, 0x02));
        rows[3].samples[si].push_back(
            measure(driver, tcp(b_.ip.c_str(), 40001, 0x10), {.reset_ttl = true}));
        expect(TC_ACT_REDIRECT, "established local delivery");

        uint16_t base = 10000;
        rows[4].samples[si].push_back(measure(driver, tcp(kAllowedRemote, base, 0x02),
                                              {.vary_ports = true, .sport_base = &base}));
        expect(TC_ACT_OK, "new flow to stack");
        base = 30000;
        rows[5].samples[si].push_back(
            measure(driver, tcp(b_.ip.c_str(), base, 0x02),
                    {.vary_ports = true, .reset_ttl = true, .sport_base = &base}));
        expect(TC_ACT_REDIRECT, "new flow local delivery");

        rows[6].samples[si].push_back(measure(lxc, tcp(kDeniedRemote, 50000, 0x02)));
        expect(TC_ACT_SHOT, "denied");

        // b answers a's connection of row 3: each side's lookup misses the original direction and
        // hits the reverse one.
        rows[7].samples[si].push_back(measure(driver, tcpFrom(b_, a_.ip.c_str(), 80, 40001, 0x10),
                                              {.reset_ttl = true, .from = &b_}));
        expect(TC_ACT_REDIRECT, "established reply local delivery");

        // A client reusing ports: each SYN finds both entries of an earlier connection on the
        // tuple closing (FINs seen both ways), and reopens them. The entries are written before
        // each run, one pair per repeat, so the run is limited to what the table holds.
        uint32_t reopen_repeat = std::min<uint32_t>(repeat_, kReopenedMax);
        base = 20000;
        rows[8].samples[si].push_back(measure(
            driver, tcp(b_.ip.c_str(), base, 0x02),
            {.vary_ports = true,
             .reset_ttl = true,
             .sport_base = &base,
             .repeat = reopen_repeat,
             .before_run = [&](uint16_t sport) { writeClosing(sport, 80, reopen_repeat); }}));
        expect(TC_ACT_REDIRECT, "reopened local delivery");

        // IPv6 twins of rows 2, 3, 5 and 6 (same policy entries: they are by identity and port).
        (void)measureOnce(lxc, tcp(kAllowedRemote6, 40000, 0x02));
        rows[9].samples[si].push_back(measure(lxc, tcp(kAllowedRemote6, 40000, 0x10)));
        expect(TC_ACT_OK, "IPv6 established to stack");
        (void)measureOnce(lxc, tcp(b_.ip6.c_str(), 40001, 0x02));
        rows[10].samples[si].push_back(
            measure(driver, tcp(b_.ip6.c_str(), 40001, 0x10), {.reset_ttl = true}));
        expect(TC_ACT_REDIRECT, "IPv6 established local delivery");
        base = 30000;
        rows[11].samples[si].push_back(
            measure(driver, tcp(b_.ip6.c_str(), base, 0x02),
                    {.vary_ports = true, .reset_ttl = true, .sport_base = &base}));
        expect(TC_ACT_REDIRECT, "IPv6 new flow local delivery");
        rows[12].samples[si].push_back(measure(lxc, tcp(kDeniedRemote6, 50000, 0x02)));
        expect(TC_ACT_SHOT, "IPv6 denied");
      }
    if (print_samples_) {
      std::printf("ns per round (ipcache 1k, 100k per round):\n");
      for (auto& r : rows) {
        std::printf("%-40.40s", r.name.c_str());
        for (size_t i = 0; i < r.samples[0].size(); i++)
          for (auto& v : r.samples) std::printf(" %5.0f", v[i]);
        std::printf("\n");
      }
    }
    for (auto& r : rows)
      for (auto& v : r.samples) r.ns.push_back(*std::min_element(v.begin(), v.end()));
    auto counters = check(dp_->eventCounters(), "event counters");

    std::printf(
        "\nbpf_lxc cil_from_container, BPF_PROG_TEST_RUN, %u repeats, fastest of %d rounds, "
        "%u policy entries per endpoint\n\n",
        repeat_, runs_, kPolicyEntries);
    std::printf("%-46s %14s %14s %16s\n", "path", "ipcache 1k", "ipcache 100k", "above baseline*");
    for (const auto& r : rows) {
      const Row& base = r.driven ? rows[1] : rows[0];
      std::string delta =
          &r == &rows[0] || &r == &rows[1]
              ? "-"
              : fmt::format("{:+.0f} / {:+.0f}", r.ns[0] - base.ns[0], r.ns[1] - base.ns[1]);
      std::printf("%-46s %11.0f ns %11.0f ns %16s\n", (r.name + (r.driven ? " (d)" : "")).c_str(),
                  r.ns[0], r.ns[1], delta.c_str());
    }
    std::printf(
        "\n* ns above the empty program, or above the driver row for (d) rows (driven: "
        "TTL restored and/or ports advanced per repeat, then a tail call).\n");
    std::printf(
        "events: rate limit %s, emitted %lu, lost (ring full) %lu, rate limited %lu, "
        "read %lu (last datapath load)\n",
        events_rate_ ? fmt::format("{}/s per CPU", events_rate_).c_str() : "none", counters.emitted,
        counters.lost, counters.rate_limited, drained_.load());
    for (const auto& c : checks) std::printf("WARNING: %s\n", c.c_str());
  }

 private:
  // Writes the two closing conntrack entries (a's egress one, b's ingress one) of the
  // connections a -> b the driver walks through in `n` repeats from (sport, dport): it adds one
  // to the 32-bit ports word before each repeat.
  void writeClosing(uint16_t sport, uint16_t dport, uint32_t n) {
    uint32_t a = ntohl(check(datapath::parseIpv4(a_.ip), "ip a"));
    uint32_t b = ntohl(check(datapath::parseIpv4(b_.ip), "ip b"));
    uint32_t ports = (static_cast<uint32_t>(sport) << 16) | dport;
    uint32_t now = datapath::monotonicSeconds();
    std::vector<ct_key4> keys;
    std::vector<ct_entry> values;
    keys.reserve(2 * n);
    values.reserve(2 * n);
    for (uint32_t i = 1; i <= n; i++) {
      uint32_t w = ports + i;
      for (uint8_t dir : {CT_KEY_EGRESS, CT_KEY_INGRESS}) {
        ct_key4 k{};
        k.saddr = htonl(a);
        k.daddr = htonl(b);
        k.sport = htons(static_cast<uint16_t>(w >> 16));
        k.dport = htons(static_cast<uint16_t>(w));
        k.nexthdr = IPPROTO_TCP;
        k.flags = dir;
        ct_entry e{};
        e.lifetime = now + 3600;  // alive through the run; closing by its flags
        e.flags = CT_F_RX_CLOSING | CT_F_TX_CLOSING | CT_F_SEEN_NON_SYN;
        e.tx_flags_seen = e.rx_flags_seen = 0x1b;  // FIN SYN PSH ACK
        e.src_sec_id = dir == CT_KEY_EGRESS ? kIdentityB : kIdentityA;
        keys.push_back(k);
        values.push_back(e);
      }
    }
    check(dp_->maps().ct_tcp->updateBatch(keys, values), "write closing entries");
  }

  int measureOnce(const bpf_program* prog, const std::vector<uint8_t>& pkt) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(a_.host_ifindex);
    auto res = bpf::testRun(prog, pkt, {.repeat = 1, .ctx = ctx});
    if (!res.ok()) die("test run", res.error());
    return res->retval;
  }

  uint32_t repeat_;
  int runs_;
  uint32_t events_rate_;
  bool drain_;

 public:
  uint32_t ct_entries_ = 0;
  bool print_samples_ = false;
  std::unique_ptr<testing::Topology> topo_;
  testing::Pod a_, b_;
  std::unique_ptr<bpf::LoadedSkeleton<bench_driver>> driver_;
  std::unique_ptr<datapath::Datapath> dp_;
  std::string dp_dir_;  // dp_'s pin dir
  std::unique_ptr<datapath::EventReader> reader_;
  std::atomic<uint64_t> drained_{0};
  int last_retval_ = 0;
};

// A non-negative integer argument, or exit with usage.
uint32_t number(const char* arg) {
  char* end = nullptr;
  unsigned long v = std::strtoul(arg, &end, 10);
  if (end == arg || *end != '\0' || v > 0xffffffffUL) {
    std::fprintf(stderr, "datapath_prog_bench: '%s' is not a number\n", arg);
    std::exit(2);
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t repeat = 1000000;
  int runs = 3;
  uint32_t events_rate = 0;
  bool drain = true;
  uint32_t ct_entries = 0;
  bool samples = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max<uint32_t>(1, number(argv[++i]));
    } else if (a == "--runs" && i + 1 < argc) {
      runs = static_cast<int>(std::clamp<uint32_t>(number(argv[++i]), 1, 100));
    } else if (a == "--events-rate" && i + 1 < argc) {
      events_rate = number(argv[++i]);
    } else if (a == "--ct-entries" && i + 1 < argc) {
      ct_entries = number(argv[++i]);
    } else if (a == "--samples") {
      samples = true;
    } else if (a == "--no-drain") {
      drain = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--repeat N] [--runs R] [--events-rate N] [--ct-entries N] "
                   "[--no-drain] [--samples]\n",
                   argv[0]);
      return 2;
    }
  }
  setLogLevel("warn");
  bpf::routeLibbpfLogs();
  if (auto why = testing::privilegedUnavailableReason(); !why.empty()) {
    std::fprintf(stderr, "datapath_prog_bench needs root and bpf(): %s\n", why.c_str());
    return 1;
  }
  (void)testing::sweepStale(false);
  Bench b(repeat, runs, events_rate, drain);
  b.ct_entries_ = ct_entries;
  b.print_samples_ = samples;
  b.setUp();
  // BPF_PROG_TEST_RUN resolves the context's ifindex in the caller's namespace: measure from a
  // thread inside the node namespace, where the pods' veths are.
  Status s = runInNetns(b.nodeNetns(), [&] {
    b.run();
    return okStatus();
  });
  if (!s.ok()) die("enter node namespace", s.error());
  return 0;
}
