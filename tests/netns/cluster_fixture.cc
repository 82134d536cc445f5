// A cluster of real processes for netns tests: node namespaces on an underlay bridge, the fake
// apiserver, the operator and one agent per node.
#include "tests/netns/cluster_fixture.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "agent/common/inet.h"
#include "agent/common/netns.h"
#include "agent/k8s/resources.h"

namespace cilium::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Runs a command and fails the test when it does not exit 0.
void runOk(const std::vector<std::string>& argv) {
  auto r = runChecked(argv);
  ASSERT_TRUE(r.ok()) << r.error().toString();
}

}  // namespace

std::string ClusterNode::netnsName() const {
  const std::string& path = topo->nodeNetns();
  return path.substr(path.rfind('/') + 1);
}

Cluster::Underlay::~Underlay() {
  for (const auto& h : hosts) (void)runChecked({"ip", "netns", "delete", h});
  if (!name.empty()) (void)runChecked({"ip", "netns", "delete", name});
}

std::string Cluster::underlayIp(int i) const {
  return fmt::format("172.31.{}.{}", options_.underlay_octet, i + 1);
}

std::string Cluster::underlayIp6(int i) const {
  return fmt::format("fd00:172:31:{}::{:x}", options_.underlay_octet, i + 1);
}

std::string Cluster::apiServerIp() const {
  return fmt::format("172.31.{}.254", options_.underlay_octet);
}

void Cluster::build(ClusterOptions options) {
  options_ = std::move(options);
  nodes.resize(options_.nodes);
  for (int i = 0; i < options_.nodes; i++) {
    auto& n = nodes[i];
    n.name = "node-" + std::to_string(i + 1);
    // Pod subnets 10.200/16, 10.201/16, ...: what the operator hands out in order.
    auto topo = Topology::create(200 + i);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    n.topo = std::move(*topo);
    auto node = AgentNode::create(*n.topo, options_.agent_binary);
    ASSERT_TRUE(node.ok()) << node.error().toString();
    n.node.emplace(std::move(*node));
    if (options_.ipv6) {
      // IPv6 on in this node namespace (before its devices exist), forwarding in it only; no
      // duplicate address detection, so that addresses are usable at once.
      runOk({"ip", "netns", "exec", n.netnsName(), "sysctl", "-qw",
             "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
             "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
             "net.ipv6.conf.all.forwarding=1"});
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  buildUnderlay();
  if (::testing::Test::HasFatalFailure()) return;
  // The apiserver on the underlay, reachable from every node namespace.
  ASSERT_TRUE(runInNetns(underlayNetns(), [&] { return server.start(apiServerIp(), 0); }).ok());
  ASSERT_TRUE(
      server
          .create(
              k8s::Resource<k8s::Namespace>::info(),
              {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}})
          .ok());
  std::vector<std::string> argv = {options_.operator_binary, "--k8s-api-server=" + server.url(),
                                   std::string("--cluster-pool-ipv4-cidr=") + kPoolCidr,
                                   "--cluster-pool-ipv4-mask-size=16",
                                   "--leader-election-retry-period=100ms"};
  if (options_.ipv6)
    argv.insert(argv.end(), {std::string("--cluster-pool-ipv6-cidr=") + kPoolCidr6,
                             "--cluster-pool-ipv6-mask-size=112"});
  argv.insert(argv.end(), options_.operator_flags.begin(), options_.operator_flags.end());
  auto op = nodes[0].topo->spawnIn(underlayNetns(), argv, "operator");
  ASSERT_TRUE(op.ok()) << op.error().toString();
}

void Cluster::plug(const std::string& ns, const std::string& ifname, const std::string& ip,
                   const std::string& port) {
  runOk({"ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns",
         underlay_.name});
  runOk({"ip", "-n", ns, "addr", "add", ip + "/24", "dev", ifname});
  runOk({"ip", "-n", ns, "link", "set", ifname, "up"});
  runOk({"ip", "-n", underlay_.name, "link", "set", port, "master", "br0"});
  runOk({"ip", "-n", underlay_.name, "link", "set", port, "up"});
}

void Cluster::buildUnderlay() {
  // Named after the first node's prefix, so that a killed run's namespaces are swept with it.
  const std::string prefix = nodes[0].topo->prefix();
  underlay_.name = prefix + "-ul";
  runOk({"ip", "netns", "add", underlay_.name});
  runOk({"ip", "-n", underlay_.name, "link", "set", "lo", "up"});
  runOk({"ip", "-n", underlay_.name, "link", "add", "br0", "type", "bridge"});
  runOk({"ip", "-n", underlay_.name, "addr", "add", apiServerIp() + "/24", "dev", "br0"});
  runOk({"ip", "-n", underlay_.name, "link", "set", "br0", "up"});
  for (int i = 0; i < options_.nodes; i++) {
    std::string ns = nodes[i].netnsName();
    plug(ns, "ul0", underlayIp(i), "ul" + std::to_string(i));
    if (options_.ipv6)
      runOk({"ip", "-n", ns, "-6", "addr", "add", underlayIp6(i) + "/64", "dev", "ul0", "nodad"});
    // `ip -o link show ul0`: "... link/ether <mac> brd ...".
    auto r = runChecked({"ip", "-n", ns, "-o", "link", "show", "ul0"});
    ASSERT_TRUE(r.ok()) << r.error().toString();
    auto at = r->find("link/ether ");
    ASSERT_NE(at, std::string::npos) << *r;
    nodes[i].ul_mac = r->substr(at + 11, 17);
  }
  for (size_t k = 0; k < options_.outside_hosts.size(); k++) {
    std::string tag = "o" + std::to_string(k + 1);
    std::string ns = prefix + "-" + tag;
    underlay_.hosts.push_back(ns);
    runOk({"ip", "netns", "add", ns});
    runOk({"ip", "-n", ns, "link", "set", "lo", "up"});
    plug(ns, "eth0", options_.outside_hosts[k], tag);
  }
}

void Cluster::startAll() {
  for (int i = 0; i < options_.nodes; i++) {
    addNodeObject(i);
    startAgent(i);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

void Cluster::addNodeObject(int i) {
  json addresses = {{{"type", "InternalIP"}, {"address", underlayIp(i)}}};
  if (options_.ipv6) addresses.push_back({{"type", "InternalIP"}, {"address", underlayIp6(i)}});
  ASSERT_TRUE(
      server
          .create(k8s::Resource<k8s::Node>::info(), {{"apiVersion", "v1"},
                                                     {"kind", "Node"},
                                                     {"metadata", {{"name", nodes[i].name}}},
                                                     {"status", {{"addresses", addresses}}}})
          .ok());
}

void Cluster::startAgent(int i, const std::string& log) {
  auto& n = nodes[i];
  if (n.argv.empty()) {
    auto cgroup = n.topo->cgroupDir();
    ASSERT_TRUE(cgroup.ok()) << cgroup.error().toString();
    std::vector<std::string> flags = {"--ipv4-range=auto", "--k8s-api-server=" + server.url(),
                                      "--k8s-sync-timeout=60", "--identity-allocation-mode=crd",
                                      "--cgroup-root=" + *cgroup};
    if (options_.hubble)
      flags.insert(flags.end(), {"--enable-hubble", "--hubble-socket-path=" + n.hubbleSock(),
                                 "--hubble-listen-address=", "--monitor-aggregation=none"});
    if (options_.native_routing)
      flags.insert(flags.end(),
                   {"--routing-mode=native", std::string("--ipv4-native-routing-cidr=") + kPoolCidr,
                    "--auto-direct-node-routes"});
    if (options_.ipv6) {
      flags.insert(flags.end(), {"--enable-ipv6", "--ipv6-range=auto"});
      if (options_.native_routing)
        flags.push_back(std::string("--ipv6-native-routing-cidr=") + kPoolCidr6);
    }
    flags.insert(flags.end(), options_.agent_flags.begin(), options_.agent_flags.end());
    n.argv = n.node->args(flags);
    for (auto& a : n.argv)
      if (a.rfind("--node-name=", 0) == 0) a = "--node-name=" + n.name;
  }
  auto p = n.topo->spawnIn(n.topo->nodeNetns(), n.argv, log);
  ASSERT_TRUE(p.ok()) << p.error().toString();
  n.agent = *p;
  ASSERT_TRUE(n.node->waitReady(n.agent, 60s)) << n.node->log(log);
  auto cfg = n.client().getConfig();
  ASSERT_TRUE(cfg.ok() && cfg->status && cfg->status->addressing && cfg->status->addressing->ipv4);
  n.cidr = cfg->status->addressing->ipv4->alloc_range;
  if (options_.ipv6) {
    ASSERT_TRUE(cfg->status->addressing->ipv6) << "no IPv6 addressing" << n.node->log(log);
    n.cidr6 = cfg->status->addressing->ipv6->alloc_range;
  }
}

Pod Cluster::addPod(int i, const std::string& name, const std::string& app, int host,
                    std::optional<int> mtu) {
  auto& n = nodes[i];
  // In the node's pod CIDR (10.x.0.0/16), whichever the operator gave it.
  std::string ip = n.cidr.substr(0, n.cidr.find(".0.0/")) + ".0." + std::to_string(host);
  std::string ip6;
  json pod_ips = {{{"ip", ip}}};
  if (!n.cidr6.empty()) {
    auto c6 = IpPrefix::parse(n.cidr6);
    EXPECT_TRUE(c6.ok()) << n.cidr6;
    if (c6.ok()) ip6 = c6->addr().plus(static_cast<uint64_t>(host)).toString();
    pod_ips.push_back({{"ip", ip6}});
  }
  EXPECT_TRUE(server
                  .create(k8s::Resource<k8s::Pod>::info(),
                          {{"apiVersion", "v1"},
                           {"kind", "Pod"},
                           {"metadata",
                            {{"name", name}, {"namespace", "default"}, {"labels", {{"app", app}}}}},
                           {"spec", {{"nodeName", n.name}}},
                           {"status", {{"podIP", ip}, {"podIPs", pod_ips}}}})
                  .ok());
  auto pod = n.topo->addPod(name, ip, ip6);
  EXPECT_TRUE(pod.ok()) << pod.error().toString();
  if (!pod.ok()) return {};
  if (mtu) {
    const std::string& path = pod->netns;
    auto r = runChecked({"ip", "-n", path.substr(path.rfind('/') + 1), "link", "set", "eth0", "mtu",
                         std::to_string(*mtu)});
    EXPECT_TRUE(r.ok()) << r.error().toString();
  }
  api::EndpointChangeRequest req;
  req.container_id = "ctr-" + name;
  req.container_interface_name = "eth0";
  req.interface_name = pod->host_ifname;
  req.interface_index = pod->host_ifindex;
  req.mac = pod->mac;
  req.host_mac = pod->host_mac;
  req.addressing = api::AddressPair{};
  req.addressing->ipv4 = pod->ip;
  if (!pod->ip6.empty()) req.addressing->ipv6 = pod->ip6;
  req.k8s_namespace = "default";
  req.k8s_pod_name = name;
  req.netns = pod->netns;
  auto st = n.client().putEndpoint(*api::parseEndpointRef("container-id:" + req.container_id), req);
  EXPECT_TRUE(st.ok()) << st.error().toString() << n.node->log("agent");
  return *pod;
}

std::map<std::string, json> Cluster::ipcache(int i, const std::string& table) {
  auto& n = nodes[i];
  auto r = n.topo->exec(n.topo->nodeNetns(), {options_.dbg_binary, "bpf", table, "list",
                                              "--pin-dir", n.node->pinDir(), "-o", "json"});
  std::map<std::string, json> out;
  if (!r.ok() || r->exit_code != 0) return out;
  auto j = json::parse(r->out, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& e : j) out[e.value("prefix", "")] = e;
  return out;
}

}  // namespace cilium::testing
