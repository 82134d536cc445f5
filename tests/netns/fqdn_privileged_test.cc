// netns tier: the DNS proxy and toFQDNs end to end. The real agent (standalone, manifests dir,
// enable-l7-proxy) in a node namespace, a pod wired by cilium-cni, and an "outside" namespace
// the test makes with dnsmasq (192.0.2.53) and two TCP servers (192.0.2.80 = allowed.example.test,
// 192.0.2.81 = other.example.test, TTL 2 s):
//
//   pod client --- lxc [node: agent, DNS proxy] 192.0.2.1 --- veth --- 192.0.2.53/.80/.81 outside
//
// The pod may ask *.example.test (rules.dns) and reach allowed.example.test on TCP 80 (toFQDNs):
// its first connection after the answer succeeds, other.example.test's address stays denied, a
// query for blocked.other is REFUSED by the proxy (dnsmasq would answer it), and once the answer
// expired (tofqdns-min-ttl 0) the address is denied again. UDP and TCP DNS both go through the
// proxy. Both tests run over IPv4 and over IPv6: the IPv6 run gives the agent enable-ipv6 (a
// dual-stack pod), the outside namespace the IPv6 twins of its addresses (2001:db8::53, ::80,
// ::81), and the pod asks the IPv6 server for AAAA records.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using cilium::testing::eventually;

// The IPv4 addresses; the IPv6 run uses their twins (testing::v6Twin: 2001:db8::53, ...).
constexpr const char* kDnsServer4 = "192.0.2.53";
constexpr const char* kAllowedIp4 = "192.0.2.80";
constexpr const char* kOtherIp4 = "192.0.2.81";

// A DNS client: python3 <script> <server> <name> udp|tcp -> "rcode ip ip ..." (or "timeout").
// It asks for A records from an IPv4 server, AAAA from an IPv6 one.
constexpr const char* kResolver = R"(
import random, socket, struct, sys
server, name, proto = sys.argv[1], sys.argv[2], sys.argv[3]
v6 = ":" in server
fam = socket.AF_INET6 if v6 else socket.AF_INET
qtype = 28 if v6 else 1
qid = random.randint(0, 65535)
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
for l in name.split("."):
    q += bytes([len(l)]) + l.encode()
q += b"\0" + struct.pack(">HH", qtype, 1)
try:
    if proto == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, (server, 53))
        r = s.recv(65535)
    else:
        s = socket.create_connection((server, 53), timeout=3)
        s.sendall(struct.pack(">H", len(q)) + q)
        def rd(n):
            b = b""
            while len(b) < n:
                c = s.recv(n - len(b))
                if not c: raise OSError("closed")
                b += c
            return b
        r = rd(struct.unpack(">H", rd(2))[0])
except OSError:
    print("timeout"); sys.exit(0)
rid, flags, qd, an = struct.unpack(">HHHH", r[:8])
assert rid == qid
p = 12
def skip(p):
    while True:
        l = r[p]
        if l >= 0xc0: return p + 2
        if l == 0: return p + 1
        p += l + 1
for _ in range(qd): p = skip(p) + 4
ips = []
for _ in range(an):
    p = skip(p)
    t, c, ttl, rl = struct.unpack(">HHIH", r[p:p+10]); p += 10
    if t == 1: ips.append(socket.inet_ntoa(r[p:p+4]))
    if t == 28: ips.append(socket.inet_ntop(socket.AF_INET6, r[p:p+16]))
    p += rl
print(flags & 0xf, *ips)
)";

constexpr const char* kPods = R"(apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c, image: local/client}]}
)";

// {server}: the DNS server's /32 or /128.
constexpr const char* kPolicy = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: [{server}]
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: [{matchPattern: "*.example.test"}]
  - toFQDNs: [{matchName: allowed.example.test}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
)";

class FqdnTest : public testing::AgentNodeTest,
                 public ::testing::WithParamInterface<testing::Family> {
 protected:
  FqdnTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  // An address of the test's family (the IPv4 one or its twin).
  std::string addr(const char* v4) const { return v6_ ? testing::v6Twin(v4) : v4; }
  // The record type the pod asks for.
  std::string qtype() const { return v6_ ? "AAAA" : "A"; }
  // kPolicy for the test's family.
  std::string policy() const {
    std::string p = kPolicy;
    p.replace(p.find("{server}"), 8, dns_server_ + (v6_ ? "/128" : "/32"));
    return p;
  }

  void SetUp() override {
    v6_ = GetParam() == testing::Family::kV6;
    dns_server_ = addr(kDnsServer4);
    allowed_ip_ = addr(kAllowedIp4);
    other_ip_ = addr(kOtherIp4);
    AgentNodeTest::SetUp();
    manifests_ = dir_ + "/manifests";
    std::filesystem::create_directories(manifests_);
    outside_ = topo_->prefix() + "-out";
    outside_path_ = "/run/netns/" + outside_;
    // The outside namespace, a veth to the node, routes back to the pods through the node.
    std::string node_ns = topo_->nodeNetns();
    std::string veth = topo_->prefix().substr(0, 8) + "x";  // interface names: 15 characters
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"ip", "netns", "add", outside_},
             {"nsenter", "--net=" + node_ns, "ip", "link", "add", veth, "type", "veth", "peer",
              "name", "eth0", "netns", outside_},
             {"nsenter", "--net=" + node_ns, "ip", "addr", "add", "192.0.2.1/24", "dev", veth},
             {"nsenter", "--net=" + node_ns, "ip", "link", "set", veth, "up"},
             // Forwarding inside the test's node namespace only (never the machine's).
             {"nsenter", "--net=" + node_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
             {"ip", "-n", outside_, "link", "set", "lo", "up"},
             {"ip", "-n", outside_, "link", "set", "eth0", "up"},
             {"ip", "-n", outside_, "addr", "add", "192.0.2.53/24", "dev", "eth0"},
             {"ip", "-n", outside_, "addr", "add", "192.0.2.80/24", "dev", "eth0"},
             {"ip", "-n", outside_, "addr", "add", "192.0.2.81/24", "dev", "eth0"},
             {"ip", "-n", outside_, "route", "add", "10.0.0.0/8", "via", "192.0.2.1"}}) {
      auto r = run(argv);
      ASSERT_TRUE(r.ok() && r->exit_code == 0)
          << fmt::format("{}", fmt::join(argv, " ")) << ": " << (r.ok() ? r->err : "");
    }
    if (v6_) {
      ASSERT_NO_FATAL_FAILURE(setUpIpv6(veth));
    }
    // dnsmasq answers the two names (TTL 2 s) and, were it asked, blocked.other too: a REFUSED
    // for it can only come from the proxy.
    auto dns =
        topo_->spawnIn(outside_path_,
                       {"/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                        "--conf-file=/dev/null", "--pid-file=", "--user=root", "--bind-interfaces",
                        "--listen-address=" + dns_server_, "--local-ttl=2",
                        "--host-record=allowed.example.test," + std::string(kAllowedIp4) + "," +
                            testing::v6Twin(kAllowedIp4),
                        "--host-record=other.example.test," + std::string(kOtherIp4) + "," +
                            testing::v6Twin(kOtherIp4),
                        "--address=/other/192.0.2.99", "--log-queries", "--log-facility=-"},
                       "dnsmasq");
    ASSERT_TRUE(dns.ok()) << dns.error().toString();
  }

  // IPv6: the node forwards IPv6 (inside the test's namespace only) and reaches the outside
  // namespace's twins; the outside routes the pods' IPv6 range back through the node. Before
  // dnsmasq starts (it binds 2001:db8::53).
  void setUpIpv6(const std::string& veth) {
    ASSERT_TRUE(topo_->enableNodeIpv6().ok());
    std::string node_ns = topo_->nodeNetns();
    std::vector<std::vector<std::string>> cmds = {
        {"nsenter", "--net=" + node_ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
        {"nsenter", "--net=" + node_ns, "ip", "-6", "addr", "add", "2001:db8::1/64", "dev", veth,
         "nodad"},
        {"ip", "netns", "exec", outside_, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"},
        {"ip", "netns", "exec", outside_, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0"}};
    for (const char* a : {kDnsServer4, kAllowedIp4, kOtherIp4})
      cmds.push_back({"ip", "-n", outside_, "-6", "addr", "add", testing::v6Twin(a) + "/64", "dev",
                      "eth0", "nodad"});
    cmds.push_back({"ip", "-n", outside_, "-6", "route", "add", "fd00::/8", "via", "2001:db8::1"});
    for (const auto& argv : cmds) {
      auto r = run(argv);
      ASSERT_TRUE(r.ok() && r->exit_code == 0)
          << fmt::format("{}", fmt::join(argv, " ")) << ": " << (r.ok() ? r->err : "");
    }
  }

  void TearDown() override {
    for (const auto& ns : pod_netns_) (void)run({"ip", "netns", "del", ns});
    (void)run({"ip", "netns", "del", outside_});
  }

  void write(const std::string& name, const std::string& text) {
    std::string tmp = manifests_ + "/." + name + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, manifests_ + "/" + name);
  }

  std::string addPod(const std::string& pod) {
    std::string ns = topo_->prefix() + "-" + pod;
    auto r = run({"ip", "netns", "add", ns});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    pod_netns_.push_back(ns);
    pod_path_ = "/run/netns/" + ns;
    auto add = node_->cni(CILIUM_CNI_BINARY, {"ADD", "ctr-" + pod, pod_path_, "default", pod});
    if (!add.ok() || add->exit_code != 0) {
      ADD_FAILURE() << "ADD " << pod << ": " << (add.ok() ? add->out + add->err : "");
      return "";
    }
    // The pod's address of the test's family.
    // Parsed into a variable: a range-for over a member of a temporary dangles (C++20).
    const auto result = nlohmann::json::parse(add->out);
    for (const auto& entry : result["ips"]) {
      std::string ip = entry["address"];
      if ((ip.find(':') != std::string::npos) == v6_) return ip.substr(0, ip.find('/'));
    }
    ADD_FAILURE() << "ADD " << pod << ": no address of the family: " << add->out;
    return "";
  }

  // "rcode ip..." as the pod's resolver got it.
  std::string resolve(const std::string& name, const std::string& proto = "udp") {
    auto r = topo_->exec(pod_path_, {"python3", "-c", kResolver, dns_server_, name, proto});
    if (!r.ok()) return "exec: " + r.error().message();
    std::string out = r->out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return r->exit_code == 0 ? out : "exit " + std::to_string(r->exit_code) + ": " + r->err;
  }

  // The agent's flags: the DNS proxy, Hubble on a Unix socket and both metrics endpoints (in
  // the test's node namespace).
  std::vector<std::string> agentArgs(const std::string& min_ttl) {
    std::vector<std::string> args = {
        "--manifests-dir=" + manifests_,          "--enable-l7-proxy=true",
        "--tofqdns-min-ttl=" + min_ttl,           "--enable-hubble",
        "--hubble-socket-path=" + hubbleSock(),   "--hubble-listen-address=",
        "--prometheus-serve-addr=127.0.0.1:9962", "--hubble-metrics-server=127.0.0.1:9965"};
    if (v6_) {
      args.emplace_back("--enable-ipv6=true");
      args.emplace_back("--ipv6-range=fd00:200::/112");
    }
    return args;
  }
  std::string hubbleSock() const { return dir_ + "/run/hubble.sock"; }

  // `hubble observe` against the agent: the output ("" when it fails).
  std::string observe(std::vector<std::string> args) {
    args.insert(args.begin(),
                {CILIUM_HUBBLE_BINARY, "--server", "unix://" + hubbleSock(), "observe", "--all"});
    auto r = run(args);
    return r.ok() && r->exit_code == 0 ? r->out : std::string();
  }

  std::string scrape(int port) {
    auto r = topo_->exec(topo_->nodeNetns(),
                         {"curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
    return r.ok() ? r->out : std::string();
  }
  // The value of one series in an exposition ("name{labels}"); -1 when absent.
  static double series(const std::string& text, const std::string& name) {
    auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size() + 2));
  }

  // The cache entries of `name` (GET /v1/fqdn/cache).
  nlohmann::json cached(const std::string& name) {
    auto out = nlohmann::json::array();
    auto r = node_->client().call("GET", "/v1/fqdn/cache?matchpattern=" + name);
    if (!r.ok() || r->status != 200) return out;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_array() ? j : out;
  }

  bool reaches(const std::string& ip, int listen_fd) {
    auto c = testing::connectTcp(pod_path_, ip, 80, 700ms);
    if (!c.ok()) return false;
    (void)testing::acceptTcp(listen_fd, 1s);
    return true;
  }

  bool v6_ = false;
  std::string dns_server_, allowed_ip_, other_ip_;  // of the test's family
  std::string manifests_, outside_, outside_path_, pod_path_;
  std::vector<std::string> pod_netns_;
};

TEST_P(FqdnTest, ToFqdnsAllowsLearnedAddressesUntilTheyExpire) {
  write("pods.yaml", kPods);
  write("policy.yaml", policy());
  Process* agent = node_->startReady("agent", agentArgs("0"));
  ASSERT_NE(agent, nullptr);
  ASSERT_FALSE(addPod("client").empty());
  auto allowed = testing::listenTcp(outside_path_, allowed_ip_, 80);
  auto other = testing::listenTcp(outside_path_, other_ip_, 80);
  ASSERT_TRUE(allowed.ok() && other.ok());

  // Before any lookup the address is world: denied.
  ASSERT_TRUE(eventually([&] { return resolve("blocked.other") == "5"; }, 10s))
      << "the proxy answers REFUSED for a name no DNS rule allows: " << resolve("blocked.other")
      << "\n"
      << node_->log("agent");
  EXPECT_FALSE(reaches(allowed_ip_, allowed->get()));

  // The answer is released only once the address is enforceable: the first connect succeeds.
  EXPECT_EQ(resolve("allowed.example.test"), "0 " + allowed_ip_);
  EXPECT_TRUE(reaches(allowed_ip_, allowed->get())) << node_->log("agent");
  // other.example.test may be resolved (the DNS rule allows it), not connected to.
  EXPECT_EQ(resolve("other.example.test"), "0 " + other_ip_);
  EXPECT_FALSE(reaches(other_ip_, other->get()));
  // TCP DNS goes through the proxy too.
  EXPECT_EQ(resolve("blocked.other", "tcp"), "5");
  EXPECT_EQ(resolve("allowed.example.test", "tcp"), "0 " + allowed_ip_);

  // The cache as cilium-dbg shows it.
  auto cache = node_->client().call("GET", "/v1/fqdn/cache");
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(cache->status, 200);
  EXPECT_NE(cache->body.find("allowed.example.test"), std::string::npos) << cache->body;

  // Every query the proxy answered is a Hubble L7 flow: the refused one DROPPED, the allowed
  // one's query and answer FORWARDED (the answer from the server, with its address).
  std::string flows;
  EXPECT_TRUE(eventually(
      [&] {
        flows = observe({"--type", "l7", "--protocol", "dns"});
        return flows.find("DNS Answer \"" + allowed_ip_ + "\"") != std::string::npos;
      },
      10s))
      << flows;
  EXPECT_NE(flows.find("dns-request DROPPED (DNS Query blocked.other. " + qtype() + ")"),
            std::string::npos)
      << flows;
  EXPECT_NE(flows.find("dns-request FORWARDED (DNS Query allowed.example.test. " + qtype() + ")"),
            std::string::npos)
      << flows;
  // The answer goes from the server to the pod (printed as a reply; an IPv6 address bracketed).
  EXPECT_NE(flows.find(v6_ ? " <- [" + dns_server_ + "]:53 " : " <- " + dns_server_ + ":53 "),
            std::string::npos)
      << flows;
  EXPECT_NE(flows.find("dns-response FORWARDED (DNS Answer \"" + allowed_ip_ +
                       "\" TTL: 2 (Proxy allowed.example.test. " + qtype() + "))"),
            std::string::npos)
      << flows;
  auto json = observe({"--protocol", "dns", "--verdict", "DROPPED", "-o", "json"});
  EXPECT_NE(json.find("\"query\":\"blocked.other.\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"observation_source\":\"proxy\""), std::string::npos) << json;
  EXPECT_EQ(json.find("allowed.example.test"), std::string::npos) << json;

  // The counters: the proxy's (cilium_policy_l7_total), Hubble's dns metrics; a refused query
  // moves the denied counter.
  std::string agent_metrics = scrape(9962);
  const std::string denied = "cilium_policy_l7_total{rule=\"denied\",proxy_type=\"fqdn\"}";
  double denied_before = series(agent_metrics, denied);
  EXPECT_GE(denied_before, 2) << agent_metrics;
  EXPECT_GE(series(agent_metrics, "cilium_fqdn_selectors"), 1) << agent_metrics;
  EXPECT_NE(agent_metrics.find("cilium_proxy_upstream_reply_seconds_count{error=\"allow\","
                               "protocol_l7=\"dns\",scope=\"totalTime\"}"),
            std::string::npos)
      << agent_metrics;
  EXPECT_EQ(resolve("blocked.other"), "5");
  EXPECT_TRUE(eventually([&] { return series(scrape(9962), denied) == denied_before + 1; }, 5s))
      << scrape(9962);
  std::string hubble_metrics;
  EXPECT_TRUE(eventually(
      [&] {
        hubble_metrics = scrape(9965);
        return series(hubble_metrics, "hubble_dns_queries_total{rcode=\"Policy denied\",qtypes=\"" +
                                          qtype() + "\",ips_returned=\"0\"}") >= 3;
      },
      5s))
      << hubble_metrics;
  EXPECT_GE(series(hubble_metrics, "hubble_dns_responses_total{rcode=\"No Error\",qtypes=\"" +
                                       qtype() + "\",ips_returned=\"1\"}"),
            3)
      << hubble_metrics;

  // TTL 2 s, min-ttl 0: the address expires and is denied again.
  EXPECT_TRUE(eventually([&] { return !reaches(allowed_ip_, allowed->get()); }, 10s))
      << node_->log("agent");
  // A fresh lookup allows it again at once.
  EXPECT_EQ(resolve("allowed.example.test"), "0 " + allowed_ip_);
  EXPECT_TRUE(reaches(allowed_ip_, allowed->get()));
}

// The DNS cache survives an agent restart: a learned name's address is still allowed after the
// restart before any new lookup, the cache lists it with the expiry it had, and it still
// expires at that time.
TEST_P(FqdnTest, LearnedNamesSurviveAnAgentRestart) {
  write("pods.yaml", kPods);
  write("policy.yaml", policy());
  // dnsmasq's TTL (2 s) raised to 12 s: long enough to outlive the restart.
  Process* agent = node_->startReady("agent", agentArgs("12"));
  ASSERT_NE(agent, nullptr);
  ASSERT_FALSE(addPod("client").empty());
  auto allowed = testing::listenTcp(outside_path_, allowed_ip_, 80);
  ASSERT_TRUE(allowed.ok());
  ASSERT_TRUE(
      eventually([&] { return resolve("allowed.example.test") == "0 " + allowed_ip_; }, 10s))
      << node_->log("agent");
  ASSERT_TRUE(reaches(allowed_ip_, allowed->get()));
  auto before = cached("allowed.example.test");
  ASSERT_EQ(before.size(), 1u) << before.dump();
  int64_t expires = before[0]["expiration-time-unix"];

  ASSERT_EQ(agent->stop(10s), 0) << node_->log("agent");
  Process* again = node_->startReady("agent2", agentArgs("12"));
  ASSERT_NE(again, nullptr);
  // No lookup since the restart: the restored cache keeps the address allowed.
  EXPECT_TRUE(reaches(allowed_ip_, allowed->get())) << node_->log("agent2");
  auto after = cached("allowed.example.test");
  ASSERT_EQ(after.size(), 1u) << after.dump();
  EXPECT_EQ(after[0]["expiration-time-unix"], expires) << after.dump();
  EXPECT_EQ(after[0]["ips"], nlohmann::json::array({allowed_ip_})) << after.dump();
  // It expires when it would have without the restart (GC runs every second).
  EXPECT_TRUE(eventually([&] { return !reaches(allowed_ip_, allowed->get()); }, 20s))
      << node_->log("agent2");
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  EXPECT_GE(now, expires) << "denied before its expiry";
  EXPECT_TRUE(cached("allowed.example.test").empty());
}

CILIUM_INSTANTIATE_FAMILIES(FqdnTest);

}  // namespace
}  // namespace cilium
