// dns_proxy_bench: DNS queries from a pod at a fixed rate (default 1,000/s, open loop: sent on
// schedule whether or not answers came back), side by side in one run: "direct" (UDP to dnsmasq
// on port 5353, allowed at L4) and "proxy" (UDP to dnsmasq on port 53, redirected by the
// datapath to the agent's DNS proxy, which checks the name against a rules.dns pattern, forwards
// to dnsmasq and learns the answer in its FQDN cache, with a toFQDNs selector matching the names,
// before it releases the answer). Alternating runs; prints p50/p99/max latency and timeouts.
// Never fails on time.
//
//   sudo ./build/bench/dns_proxy_bench [--seconds N] [--runs R] [--rate Q]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "agent/common/fd.h"
#include "agent/common/log.h"
#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/fqdn/dns_proxy.h"
#include "agent/identity/allocator.h"
#include "agent/ipcache/ipcache.h"
#include "agent/proxy/ports.h"
#include "bench/bench_net.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"

using namespace cilium;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kClientId = 1001, kServerId = 1002;
constexpr int kNames = 100;  // host-0 .. host-99.bench.test, round robin

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "dns_proxy_bench: %s: %s\n", what.c_str(), e.toString().c_str());
  std::exit(1);
}

// An A query for host-<n>.bench.test with id `id`.
std::vector<uint8_t> query(uint16_t id, int n) {
  std::vector<uint8_t> q = {
      static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  for (const std::string& label :
       {"host-" + std::to_string(n), std::string("bench"), std::string("test")}) {
    q.push_back(static_cast<uint8_t>(label.size()));
    q.insert(q.end(), label.begin(), label.end());
  }
  for (uint8_t b : {0, 0, 1, 0, 1}) q.push_back(b);
  return q;
}

struct Stats {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t sent = 0, answered = 0, timeouts = 0, errors = 0;
};

// From the client pod: `rate` queries/s for `seconds` to server:port, each answer matched by id;
// a query without an answer 2 s after the last one was sent is a timeout, an answer with an
// rcode other than NOERROR or without the address an error.
Result<Stats> load(const std::string& netns, const std::string& server, uint16_t port, int rate,
                   int seconds) {
  return runInNetnsValue<Stats>(netns, [&]() -> Result<Stats> {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return makeError(ErrorCode::kInternal, "socket: {}", std::strerror(errno));
    int buf = 4 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, server.c_str(), &to.sin_addr);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0)
      return makeError(ErrorCode::kInternal, "connect: {}", std::strerror(errno));
    const size_t total = static_cast<size_t>(rate) * static_cast<size_t>(seconds);
    using Clock = std::chrono::steady_clock;
    std::vector<Clock::time_point> sent_at(65536);
    std::vector<double> latency_ms;
    latency_ms.reserve(total);
    std::vector<uint8_t> answered(65536, 0);
    std::atomic<bool> done{false};
    Stats s;
    std::thread receiver([&] {
      uint8_t msg[1500];
      auto deadline = Clock::time_point::max();
      while (Clock::now() < deadline) {
        if (done && deadline == Clock::time_point::max()) deadline = Clock::now() + 2s;
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        ssize_t n = ::recv(fd.get(), msg, sizeof(msg), 0);
        auto now = Clock::now();
        if (n < 12) continue;
        uint16_t id = static_cast<uint16_t>(msg[0] << 8 | msg[1]);
        if (answered[id]) continue;
        answered[id] = 1;
        s.answered++;
        // NOERROR with one answer record: what dnsmasq gives for every name.
        if ((msg[3] & 0x0f) != 0 || (msg[6] << 8 | msg[7]) != 1) s.errors++;
        latency_ms.push_back(std::chrono::duration<double, std::milli>(now - sent_at[id]).count());
        if (done && s.answered == s.sent) break;
      }
    });
    auto start = Clock::now();
    auto interval = std::chrono::nanoseconds(1'000'000'000 / rate);
    for (size_t i = 0; i < total; i++) {
      std::this_thread::sleep_until(start + interval * static_cast<int64_t>(i));
      auto id = static_cast<uint16_t>(i);  // < 65536 queries in flight at a time
      auto q = query(id, static_cast<int>(i % kNames));
      sent_at[id] = Clock::now();
      answered[id] = 0;
      if (::send(fd.get(), q.data(), q.size(), 0) > 0) s.sent++;
    }
    done = true;
    receiver.join();
    s.timeouts = s.sent - s.answered;
    std::sort(latency_ms.begin(), latency_ms.end());
    if (!latency_ms.empty()) {
      s.p50_ms = latency_ms[latency_ms.size() / 2];
      s.p99_ms = latency_ms[latency_ms.size() * 99 / 100];
      s.max_ms = latency_ms.back();
    }
    return s;
  });
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 10, runs = 3, rate = 1000;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (a == "--rate" && i + 1 < argc) {
      rate = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--seconds N] [--runs R] [--rate Q]\n", argv[0]);
      return 2;
    }
  }
  if (seconds <= 0 || runs <= 0 || rate <= 0 || rate * seconds > 60000) {
    std::fprintf(stderr, "dns_proxy_bench: need rate * seconds <= 60000 (query ids)\n");
    return 2;
  }
  if (!bench::startPrivilegedBench("dns_proxy_bench")) return 1;

  auto topo = testing::Topology::create(207);
  if (!topo.ok()) die("topology", topo.error());
  auto client = (*topo)->addPod("client", "10.207.0.11");
  if (!client.ok()) die("pod", client.error());
  auto server = (*topo)->addPod("dns", "10.207.0.12");
  if (!server.ok()) die("pod", server.error());
  auto pin = (*topo)->pinDir();
  if (!pin.ok()) die("pin dir", pin.error());
  auto dp = datapath::Datapath::load({*pin});
  if (!dp.ok()) die("load", dp.error());
  auto maps = (*dp)->maps();
  if (auto st = testing::programEndpoint(maps, *client, 1, kClientId); !st.ok())
    die("ep", st.error());
  if (auto st = testing::programEndpoint(maps, *server, 2, kServerId); !st.ok())
    die("ep", st.error());
  if (auto st = testing::programNode(maps, (*topo)->routerIp()); !st.ok()) die("node", st.error());
  auto ports = runInNetnsValue<proxy::ProxyPortSet>(
      (*topo)->nodeNetns(), [&]() -> Result<proxy::ProxyPortSet> {
        for (const auto* p : {&*client, &*server})
          CILIUM_RETURN_IF_ERROR((*dp)->attachEndpoint(p->host_ifindex));
        CILIUM_RETURN_IF_ERROR((*dp)->enableProxyRedirect());
        return proxy::loadOrAllocatePorts((*topo)->tmpDir(), 10000, 10999);
      });
  if (!ports.ok()) die("proxy redirect", ports.error());
  auto entry = [](uint32_t id, uint8_t dir, uint16_t port, uint16_t proxy_port) {
    datapath::PolicyEntry e{datapath::policyKey(id, dir, port ? 17 : 0, port, port ? 16 : 0), {}};
    e.value.proxy_port = htons(proxy_port);
    return e;
  };
  // The client: UDP 53 to the server through the DNS proxy, UDP 5353 straight. The server:
  // everything in (the proxy's queries come from the node).
  std::vector<datapath::PolicyEntry> client_policy = {
      entry(kServerId, POLICY_EGRESS, 53, ports->dns_egress),
      entry(kServerId, POLICY_EGRESS, 5353, 0)};
  std::vector<datapath::PolicyEntry> server_policy = {entry(0, POLICY_INGRESS, 0, 0)};
  if (auto st = maps.policy->replace(1, client_policy); !st.ok()) die("policy", st.error());
  if (auto st = maps.policy->replace(2, server_policy); !st.ok()) die("policy", st.error());
  if (auto st = datapath::bumpPolicyRevision(*maps.runtime_config); !st.ok())
    die("rev", st.error());

  // The agent's side of the DNS proxy: the endpoint's DNS rule, the FQDN cache with a toFQDNs
  // selector matching every name asked (identities allocated, node-local), the ipcache writing
  // the datapath's map, as in the agent.
  auto ids = identity::Allocator::open("");
  if (!ids.ok()) die("identities", ids.error());
  ipcache::IpCache ipc(maps.ipcache, maps.runtime_config);
  if (auto st = ipc.upsert(IpPrefix::host(*IpAddr::parse(server->ip)), ipcache::Info{kServerId},
                           ipcache::Source::kLocal);
      !st.ok())
    die("ipcache", st.error());
  fqdn::NameManager names(**ids, ipc, fqdn::CacheOptions{0, 50, 0s}, nullptr);
  if (auto st = names.setSelectors({"*.bench.test"}); !st.ok()) die("selectors", st.error());
  fqdn::DnsPolicy dns_policy;
  policy::L7PortRule rule;
  rule.dir = policy::Direction::kEgress;
  rule.proto = 17;
  rule.port = 53;
  rule.bits = 16;
  rule.identities = {kServerId};
  rule.dns.push_back({"", "*.bench.test"});
  policy::L7Policy l7;
  l7.rules.push_back(rule);
  dns_policy.l7PoliciesChanged({{1, kClientId, *IpAddr::parse(client->ip), l7}});
  fqdn::DnsProxyOptions po;
  po.port = ports->dns_egress;
  auto proxy = runInNetnsValue<std::unique_ptr<fqdn::DnsProxy>>(
      (*topo)->nodeNetns(), [&]() -> Result<std::unique_ptr<fqdn::DnsProxy>> {
        return fqdn::DnsProxy::start(po, dns_policy, names, ipc);
      });
  if (!proxy.ok()) die("DNS proxy", proxy.error());

  // dnsmasq in the server pod, twice: port 53 (behind the proxy) and 5353 (direct).
  for (const char* port : {"53", "5353"}) {
    auto d = (*topo)->spawnIn(
        server->netns,
        {"/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
         "--conf-file=/dev/null", "--pid-file=", "--user=root", "--bind-interfaces",
         "--listen-address=" + server->ip, std::string("--port=") + port, "--local-ttl=60",
         "--address=/bench.test/192.0.2.99", "--cache-size=1000", "--dns-forward-max=10000"},
        std::string("dnsmasq-") + port);
    if (!d.ok()) die("dnsmasq", d.error());
  }
  // Both answer before the runs start.
  for (uint16_t port : {5353, 53}) {
    if (!testing::eventually(
            [&] {
              auto s = load(client->netns, server->ip, port, 100, 1);
              return s.ok() && s->answered == s->sent && s->errors == 0;
            },
            20s))
      die("warm-up",
          Error(ErrorCode::kDeadlineExceeded, fmt::format("no answers on port {}", port)));
  }

  std::printf(
      "DNS A queries over UDP from a pod, %d/s open loop, %d s per run, %d runs each, "
      "alternating; %d names\n",
      rate, seconds, runs, kNames);
  std::printf("%-8s %8s %9s %9s %9s %9s %7s\n", "mode", "sent", "answered", "p50 ms", "p99 ms",
              "max ms", "timeouts");
  std::vector<double> direct_p99, proxy_p99;
  size_t direct_to = 0, proxy_to = 0;
  for (int r = 0; r < runs; r++) {
    for (auto [mode, port] : {std::pair{"direct", 5353}, std::pair{"proxy", 53}}) {
      auto s = load(client->netns, server->ip, static_cast<uint16_t>(port), rate, seconds);
      if (!s.ok()) die(mode, s.error());
      std::printf("%-8s %8zu %9zu %9.3f %9.3f %9.3f %7zu%s\n", mode, s->sent, s->answered,
                  s->p50_ms, s->p99_ms, s->max_ms, s->timeouts,
                  s->errors ? fmt::format(" ({} bad answers)", s->errors).c_str() : "");
      std::fflush(stdout);
      (port == 53 ? proxy_p99 : direct_p99).push_back(s->p99_ms);
      (port == 53 ? proxy_to : direct_to) += s->timeouts;
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto st = (*proxy)->stats();
  std::printf("median p99: direct %.3f ms, proxy %.3f ms; timeouts: direct %zu, proxy %zu\n",
              median(direct_p99), median(proxy_p99), direct_to, proxy_to);
  std::printf(
      "proxy counters: queries %lu allowed %lu denied %lu upstream errors %lu; cache "
      "names %zu\n",
      static_cast<unsigned long>(st.queries), static_cast<unsigned long>(st.allowed),
      static_cast<unsigned long>(st.denied), static_cast<unsigned long>(st.upstream_errors),
      names.stats().names);
  proxy->reset();
  return 0;
}
