// netns tier: the real cilium-agent in a node namespace enforcing policy on pods attached through
// the API (the test plays the CNI plugin: it makes the pod namespace and veth, then PUTs the
// endpoint). Policy imported with cilium-dbg changes what real TCP traffic can do; node<->pod
// traffic works; a live connection survives `kill -9` of the agent and its restart while a
// denied flow stays denied throughout, and the restart keeps every unchanged policy map (same
// inner map); a rule changed while the agent was down is enforced after the restart; DELETE
// leaves no map entry behind. Dual stack (enable-ipv6): endpoints with both addresses are
// reached and enforced over IPv6, by identity and by an IPv6 fromCIDR rule.
#include <bpf/bpf.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/bpf/map.h"
#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using testing::Pod;

constexpr uint16_t kPort = 8080;

class EndpointAgentTest : public testing::AgentNodeTest {
 protected:
  EndpointAgentTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  Process* startAgent(const std::string& log, const std::vector<std::string>& extra = {}) {
    auto p = node_->start(log, extra);
    EXPECT_TRUE(p.ok()) << p.error().toString();
    return p.ok() ? *p : nullptr;
  }
  api::Client client() { return node_->client(); }
  bool waitReady(Process* agent) { return node_->waitReady(agent); }
  std::string log(const std::string& name) { return node_->log(name); }

  Pod addPod(const std::string& name, const std::string& ip, const std::string& ip6 = "") {
    auto p = topo_->addPod(name, ip, ip6);
    EXPECT_TRUE(p.ok()) << p.error().toString();
    return p.ok() ? *p : Pod{};
  }

  // What cilium-cni sends for a pod.
  Status attach(const Pod& pod, const std::string& app) {
    api::EndpointChangeRequest req;
    req.container_id = "ctr-" + pod.name;
    req.container_interface_name = "eth0";
    req.interface_name = pod.host_ifname;
    req.interface_index = pod.host_ifindex;
    req.mac = pod.mac;
    req.host_mac = pod.host_mac;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = pod.ip;
    req.addressing->ipv6 = pod.ip6;
    req.k8s_namespace = "default";
    req.k8s_pod_name = pod.name;
    req.netns = pod.netns;
    req.labels = {"k8s:app=" + app};
    // The agent picks the endpoint id; the path names the container, as cilium-cni does.
    return client().putEndpoint(*api::parseEndpointRef("container-id:" + req.container_id), req);
  }

  Result<RunOutput> dbg(std::vector<std::string> args) {
    std::vector<std::string> argv = {CILIUM_DBG_BINARY, "-H", "unix://" + sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  // Imports a CNP selecting app=server that allows ingress only from app=`from`.
  void importServerPolicy(const std::string& from) {
    std::string path = dir_ + "/policy-" + from + ".yaml";
    std::ofstream(path) << "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
                           "metadata: {name: server-ingress, namespace: default}\n"
                           "spec:\n  endpointSelector: {matchLabels: {app: server}}\n"
                           "  ingress:\n  - fromEndpoints: [{matchLabels: {app: "
                        << from << "}}]\n";
    auto out = dbg({"policy", "import", path});
    ASSERT_TRUE(out.ok());
    ASSERT_EQ(out->exit_code, 0) << out->err << log("agent");
  }

  bool canConnect(const Pod& from, const Pod& to, std::chrono::milliseconds timeout = 1500ms) {
    return testing::connectTcp(from.netns, to.ip, kPort, timeout).ok();
  }
  bool nodeCanConnect(const Pod& to) {
    return testing::connectTcp(topo_->nodeNetns(), to.ip, kPort, 1500ms).ok();
  }

  // Endpoint id -> kernel id of its inner policy map, from the pinned cilium_policy_v2.
  std::map<uint32_t, uint32_t> innerPolicyMaps() {
    std::map<uint32_t, uint32_t> out;
    auto outer = bpf::openPinned(pin_ + "/cilium_policy_v2");
    EXPECT_TRUE(outer.ok()) << outer.error().toString();
    if (!outer.ok()) return out;
    uint32_t key = 0, next = 0, id = 0;
    for (bool first = true;
         ::bpf_map_get_next_key(outer->get(), first ? nullptr : &key, &next) == 0; first = false) {
      key = next;
      if (::bpf_map_lookup_elem(outer->get(), &key, &id) == 0) out[key] = id;
    }
    return out;
  }
};

TEST_F(EndpointAgentTest, PolicyFromDbgChangesRealTrafficAndDeleteCleansUp) {
  Process* agent = startAgent("agent");
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent");
  Pod client_pod = addPod("client", "10.200.0.10");
  Pod server = addPod("server", "10.200.0.11");
  Pod other = addPod("other", "10.200.0.12");
  for (auto [pod, app] :
       {std::pair{&client_pod, "client"}, {&server, "server"}, {&other, "other"}}) {
    auto st = attach(*pod, app);
    ASSERT_TRUE(st.ok()) << st.error().toString() << log("agent");
  }
  auto listener = testing::listenTcp(server.netns, server.ip, kPort);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();

  auto eps = client().listEndpoints();
  ASSERT_TRUE(eps.ok());
  ASSERT_EQ(eps->size(), 3u);
  for (const auto& ep : *eps) EXPECT_EQ(ep.status->state, api::EndpointState::kReady);
  auto list = dbg({"endpoint", "list"});
  ASSERT_TRUE(list.ok());
  EXPECT_NE(list->out.find("10.200.0.11"), std::string::npos) << list->out;
  EXPECT_NE(list->out.find("ready"), std::string::npos);

  // No policy: everything flows, node <-> pod included (cilium_host carries the router address).
  EXPECT_TRUE(canConnect(client_pod, server));
  EXPECT_TRUE(canConnect(other, server));
  EXPECT_TRUE(nodeCanConnect(server));
  auto host = topo_->exec(topo_->nodeNetns(), {"ip", "-j", "addr", "show", "dev", "cilium_host"});
  ASSERT_TRUE(host.ok());
  EXPECT_NE(host->out.find("10.200.0.1\""), std::string::npos) << host->out;

  // Policy: only app=client may reach the server.
  importServerPolicy("client");
  EXPECT_TRUE(canConnect(client_pod, server));
  EXPECT_FALSE(canConnect(other, server, 700ms)) << "other is denied";
  EXPECT_TRUE(nodeCanConnect(server)) << "the node still reaches the pod (allow-localhost)";
  // The server endpoint reports the revision it enforces.
  auto pol = client().getPolicy();
  ASSERT_TRUE(pol.ok());
  auto sep = client().getEndpoint(*api::parseEndpointRef("pod-name:default/server"));
  ASSERT_TRUE(sep.ok());
  EXPECT_EQ(sep->status->policy->realized->policy_revision, pol->revision);
  auto bpol = dbg({"bpf", "policy", "get", std::to_string(sep->id), "--pin-dir", pin_});
  ASSERT_TRUE(bpol.ok());
  EXPECT_EQ(bpol->exit_code, 0) << bpol->err;

  // `cilium-dbg monitor --type drop` streams the datapath's drops (GET /monitor): the denied SYN
  // shows up with its reason.
  std::string mon_out = dir_ + "/monitor.out";
  SpawnOptions mon_opts;
  mon_opts.stdout_path = mon_out;
  auto mon =
      spawn({CILIUM_DBG_BINARY, "-H", "unix://" + sock_, "monitor", "--type", "drop"}, mon_opts);
  ASSERT_TRUE(mon.ok());
  auto sawDrop = [&] {
    auto t = readFile(mon_out);
    return t.ok() && t->find("Policy denied") != std::string::npos &&
           t->find(other.ip) != std::string::npos;
  };
  for (int i = 0; i < 30 && !sawDrop(); i++) (void)canConnect(other, server, 200ms);
  mon->stop();
  EXPECT_TRUE(sawDrop()) << readFile(mon_out).valueOr(std::string("(no output)"));

  // Replaced: now only app=other; client is denied.
  ASSERT_EQ(dbg({"policy", "delete", "--all"})->exit_code, 0);
  importServerPolicy("other");
  EXPECT_FALSE(canConnect(client_pod, server, 700ms)) << "client is denied now";
  EXPECT_TRUE(canConnect(other, server));

  // Deleted: allowed again.
  auto del = dbg({"policy", "delete", "--all"});
  ASSERT_TRUE(del.ok());
  ASSERT_EQ(del->exit_code, 0) << del->err;
  EXPECT_TRUE(canConnect(client_pod, server));

  // cilium-dbg reads the live datapath.
  auto ipc = dbg({"bpf", "ipcache", "list", "--pin-dir", pin_});
  ASSERT_TRUE(ipc.ok());
  EXPECT_NE(ipc->out.find("10.200.0.12/32"), std::string::npos) << ipc->out;
  auto ids = dbg({"identity", "list"});
  ASSERT_TRUE(ids.ok());
  EXPECT_NE(ids->out.find("k8s:app=other"), std::string::npos) << ids->out;

  // DELETE leaves nothing of the endpoint in the maps.
  auto other_ep = client().getEndpoint(*api::parseEndpointRef("pod-name:default/other"));
  ASSERT_TRUE(other_ep.ok());
  auto removed = client().deleteEndpoint(*api::parseEndpointRef("container-id:ctr-other"));
  ASSERT_TRUE(removed.ok()) << removed.error().toString();
  EXPECT_EQ(*removed, 0);
  auto lxc = dbg({"bpf", "endpoint", "list", "--pin-dir", pin_});
  ASSERT_TRUE(lxc.ok());
  EXPECT_EQ(lxc->out.find("10.200.0.12"), std::string::npos) << lxc->out;
  EXPECT_NE(lxc->out.find("10.200.0.11"), std::string::npos) << lxc->out;
  ipc = dbg({"bpf", "ipcache", "list", "--pin-dir", pin_});
  EXPECT_EQ(ipc->out.find("10.200.0.12/32"), std::string::npos) << ipc->out;
  auto gone = dbg({"bpf", "policy", "get", std::to_string(other_ep->id), "--pin-dir", pin_});
  EXPECT_NE(gone->exit_code, 0) << gone->out;
  auto link = topo_->exec(topo_->nodeNetns(), {"ip", "link", "show", other.host_ifname});
  EXPECT_NE(link->exit_code, 0) << "the host-side veth is gone";
  auto route = topo_->exec(topo_->nodeNetns(), {"ip", "route", "show", "10.200.0.12"});
  EXPECT_EQ(route->out, "");
  EXPECT_FALSE(
      readFile(dir_ + "/run/state/endpoints/" + std::to_string(other_ep->id) + ".json").ok());

  agent->signal(SIGTERM);
  auto code = agent->wait(10s);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << log("agent");
  // A clean shutdown leaves the datapath enforcing.
  EXPECT_TRUE(canConnect(client_pod, server));
}

TEST_F(EndpointAgentTest, DualStackEndpointsAreEnforcedOverIpv6) {
  // The node has IPv6 on (the harness turns it off): the agent routes pods' /128s through their
  // veths, and the node itself is a source for the fromCIDR rule below.
  for (const char* key :
       {"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0"})
    ASSERT_EQ(topo_->exec(topo_->nodeNetns(), {"sysctl", "-qw", key})->exit_code, 0);
  Process* agent = startAgent("agent", {"--enable-ipv6=true", "--ipv6-range=fd00:200::/112"});
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent");
  Pod client_pod = addPod("client", "10.200.0.10", "fd00:200::10");
  Pod server = addPod("server", "10.200.0.11", "fd00:200::11");
  Pod other = addPod("other", "10.200.0.12", "fd00:200::12");
  for (auto [pod, app] :
       {std::pair{&client_pod, "client"}, {&server, "server"}, {&other, "other"}}) {
    auto st = attach(*pod, app);
    ASSERT_TRUE(st.ok()) << st.error().toString() << log("agent");
  }
  auto listener = testing::listenTcp(server.netns, server.ip6, kPort);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();
  auto connect6 = [&](const Pod& from, std::chrono::milliseconds timeout = 1500ms) {
    return testing::connectTcp(from.netns, server.ip6, kPort, timeout).ok();
  };
  auto ping6 = [&](const std::string& netns, const std::vector<std::string>& extra, int secs) {
    std::vector<std::string> argv = {"ping", "-6", "-c", "1", "-w", std::to_string(secs),
                                     "-n",   "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(server.ip6);
    auto r = topo_->exec(netns, argv, 10s);
    return r.ok() && r->exit_code == 0;
  };

  // No policy: TCP and ping over IPv6 between the pods.
  EXPECT_TRUE(connect6(client_pod));
  EXPECT_TRUE(connect6(other));
  EXPECT_TRUE(ping6(client_pod.netns, {}, 5));

  // cilium-dbg shows the IPv6 side: endpoint addresses, cilium_lxc and ipcache keys, conntrack.
  auto list = dbg({"endpoint", "list"});
  ASSERT_TRUE(list.ok());
  EXPECT_NE(list->out.find("fd00:200::11"), std::string::npos) << list->out;
  auto lxc = dbg({"bpf", "endpoint", "list", "--pin-dir", pin_});
  ASSERT_TRUE(lxc.ok());
  EXPECT_NE(lxc->out.find("fd00:200::11"), std::string::npos) << lxc->out;
  auto ipc = dbg({"bpf", "ipcache", "list", "--pin-dir", pin_});
  ASSERT_TRUE(ipc.ok());
  EXPECT_NE(ipc->out.find("fd00:200::11/128"), std::string::npos) << ipc->out;
  auto ct = dbg({"bpf", "ct", "list", "global", "--pin-dir", pin_});
  ASSERT_TRUE(ct.ok());
  EXPECT_NE(ct->out.find("[fd00:200::11]:8080"), std::string::npos) << ct->out;
  // The REST view of the IPv6 TCP conntrack map has the connection too.
  auto ct6 = client().getMap("cilium_ct6_global");
  ASSERT_TRUE(ct6.ok()) << ct6.error().toString();
  EXPECT_TRUE(std::any_of(ct6->cache.begin(), ct6->cache.end(), [](const api::BpfMapEntry& e) {
    return e.key.find("-> [fd00:200::11]:8080") != std::string::npos;
  })) << api::encode(*ct6).dump();

  // Identity policy: only app=client (or, over IPv6, the CIDR below) reaches the server; the
  // deny holds for both families.
  std::string path = dir_ + "/policy-v6.yaml";
  std::ofstream(path) << "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
                         "metadata: {name: server-ingress, namespace: default}\n"
                         "spec:\n  endpointSelector: {matchLabels: {app: server}}\n"
                         "  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"
                         "  - fromCIDR: [2001:db8:1::/64]\n";
  auto imported = dbg({"policy", "import", path});
  ASSERT_TRUE(imported.ok());
  ASSERT_EQ(imported->exit_code, 0) << imported->err << log("agent");
  EXPECT_TRUE(connect6(client_pod));
  EXPECT_FALSE(connect6(other, 700ms)) << "other is denied over IPv6";
  EXPECT_FALSE(testing::connectTcp(other.netns, server.ip, kPort, 700ms).ok()) << "and over IPv4";

  // fromCIDR with an IPv6 prefix: it reaches the ipcache as a CIDR identity, and a source inside
  // it passes while one outside does not (both addresses of the node, seen as the world).
  ipc = dbg({"bpf", "ipcache", "list", "--pin-dir", pin_});
  ASSERT_TRUE(ipc.ok());
  EXPECT_NE(ipc->out.find("2001:db8:1::/64"), std::string::npos) << ipc->out;
  for (const char* a : {"2001:db8:1::5/128", "2001:db8:2::5/128"})
    ASSERT_EQ(topo_->exec(topo_->nodeNetns(), {"ip", "-6", "addr", "add", a, "dev", "lo", "nodad"})
                  ->exit_code,
              0);
  EXPECT_TRUE(ping6(topo_->nodeNetns(), {"-I", "2001:db8:1::5"}, 5)) << log("agent");
  EXPECT_FALSE(ping6(topo_->nodeNetns(), {"-I", "2001:db8:2::5"}, 1));

  agent->signal(SIGTERM);
  auto code = agent->wait(10s);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << log("agent");
}

// PUT /v1/endpoint is untrusted: an address that is not one of the node's pod addresses, or a
// device that is not a pod's veth (the agent's own cilium_host above all), is refused with the
// field named, and nothing of the agent's is touched.
TEST_F(EndpointAgentTest, EndpointRequestsForForeignAddressesAndDevicesAreRefused) {
  Process* agent = startAgent("agent");
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent");
  Pod web = addPod("web", "10.200.0.10");
  auto host = topo_->exec(topo_->nodeNetns(), {"ip", "-j", "link", "show", "cilium_host"});
  ASSERT_TRUE(host.ok() && host->exit_code == 0);
  int host_ifindex = nlohmann::json::parse(host->out)[0]["ifindex"];

  auto put = [&](const std::string& ip, int ifindex, const std::string& ifname) {
    api::EndpointChangeRequest req;
    req.container_id = "ctr-evil";
    req.interface_name = ifname;
    req.interface_index = ifindex;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = ip;
    req.k8s_namespace = "default";
    req.k8s_pod_name = "evil";
    return client().putEndpoint(*api::parseEndpointRef("container-id:ctr-evil"), req);
  };
  struct Case {
    std::string ip;
    int ifindex;
    std::string ifname, want;
  } cases[] = {
      {"8.8.8.8", web.host_ifindex, web.host_ifname, "addressing.ipv4: 8.8.8.8 is not in"},
      {"10.200.0.1", web.host_ifindex, web.host_ifname, "is the router address"},
      {"10.96.0.10", web.host_ifindex, web.host_ifname, "addressing.ipv4: 10.96.0.10 is not in"},
      {"10.200.0.20", host_ifindex, "cilium_host", "cilium_host is one of the agent's own"},
      {"10.200.0.20", 1, "lo", "lo is one of the agent's own"},
  };
  for (const auto& c : cases) {
    auto st = put(c.ip, c.ifindex, c.ifname);
    ASSERT_FALSE(st.ok()) << c.ip << " on " << c.ifname << " was accepted";
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << st.error().toString();
    EXPECT_NE(st.error().message().find(c.want), std::string::npos) << st.error().message();
  }
  auto eps = client().listEndpoints();
  ASSERT_TRUE(eps.ok());
  EXPECT_TRUE(eps->empty());
  auto still = topo_->exec(topo_->nodeNetns(), {"ip", "link", "show", "cilium_host"});
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->exit_code, 0) << "cilium_host must survive";
  // The real pod is accepted, and its address is now held for it: another container cannot
  // take it.
  ASSERT_TRUE(attach(web, "web").ok()) << log("agent");
  Pod other = addPod("other", "10.200.0.11");
  auto taken = put("10.200.0.10", other.host_ifindex, other.host_ifname);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.error().message().find("already allocated to ctr-web"), std::string::npos)
      << taken.error().message();
}

TEST_F(EndpointAgentTest, LiveConnectionSurvivesKill9AndDeniedFlowStaysDenied) {
  Process* agent = startAgent("agent");
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent");
  Pod client_pod = addPod("client", "10.200.0.10");
  Pod server = addPod("server", "10.200.0.11");
  Pod other = addPod("other", "10.200.0.12");
  ASSERT_TRUE(attach(client_pod, "client").ok()) << log("agent");
  ASSERT_TRUE(attach(server, "server").ok()) << log("agent");
  ASSERT_TRUE(attach(other, "other").ok()) << log("agent");
  importServerPolicy("client");
  auto before = client().listEndpoints();
  ASSERT_TRUE(before.ok());

  auto listener = testing::listenTcp(server.netns, server.ip, kPort);
  ASSERT_TRUE(listener.ok());
  auto conn = testing::connectTcp(client_pod.netns, server.ip, kPort);
  ASSERT_TRUE(conn.ok()) << conn.error().toString();
  auto accepted = testing::acceptTcp(listener->get());
  ASSERT_TRUE(accepted.ok());
  auto echo = [&](const std::string& msg) {
    if (!testing::sendAll(conn->get(), msg).ok()) return false;
    auto got = testing::recvExactly(accepted->get(), msg.size(), 2s);
    if (!got.ok() || *got != msg) return false;
    if (!testing::sendAll(accepted->get(), msg).ok()) return false;
    auto back = testing::recvExactly(conn->get(), msg.size(), 2s);
    return back.ok() && *back == msg;
  };
  ASSERT_TRUE(echo("before"));
  ASSERT_FALSE(canConnect(other, server, 500ms));
  auto maps_before = innerPolicyMaps();
  ASSERT_EQ(maps_before.size(), 3u);

  // Probe the denied flow continuously from before the kill until after the restart.
  std::atomic<bool> stop{false};
  std::atomic<int> denied_probes{0}, leaked{0};
  std::thread prober([&] {
    while (!stop.load()) {
      if (testing::connectTcp(other.netns, server.ip, kPort, 150ms).ok())
        leaked++;
      else
        denied_probes++;
    }
  });
  while (denied_probes.load() < 2) std::this_thread::sleep_for(5ms);

  agent->signal(SIGKILL);
  ASSERT_TRUE(agent->wait(5s).ok());
  EXPECT_TRUE(echo("agent dead")) << "the datapath keeps forwarding without the agent";
  int probes_at_kill = denied_probes.load();

  auto t0 = std::chrono::steady_clock::now();
  Process* second = startAgent("agent2");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(waitReady(second)) << log("agent2");
  auto ready_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  int probes_during_restart = denied_probes.load() - probes_at_kill;
  // A few more probes against the restored datapath.
  int target = denied_probes.load() + 3;
  while (denied_probes.load() < target) std::this_thread::sleep_for(5ms);
  stop = true;
  prober.join();
  std::printf("restart: spawn to ready %lld ms, %d denied probes during the restart\n",
              static_cast<long long>(ready_ms.count()), probes_during_restart);

  EXPECT_EQ(leaked.load(), 0) << "the denied flow got through during the restart";
  EXPECT_TRUE(echo("after restart")) << "the live connection survived";
  EXPECT_TRUE(canConnect(client_pod, server));
  EXPECT_FALSE(canConnect(other, server, 500ms));

  // The same endpoints, ids and identities, ready.
  auto after = client().listEndpoints();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), before->size());
  std::map<int64_t, int64_t> id_before, id_after;
  for (const auto& e : *before) id_before[e.id] = e.status->identity->id;
  for (const auto& e : *after) {
    id_after[e.id] = e.status->identity->id;
    EXPECT_EQ(e.status->state, api::EndpointState::kReady);
  }
  EXPECT_EQ(id_before, id_after);
  EXPECT_NE(log("agent2").find("endpoints restored restored=3"), std::string::npos)
      << log("agent2");
  EXPECT_EQ(innerPolicyMaps(), maps_before)
      << "the policy did not change: every endpoint keeps its inner policy map";
  second->signal(SIGTERM);
  EXPECT_EQ(*second->wait(10s), 0) << log("agent2");
}

// Rules that change while the agent is down (here: its saved rules are edited, as a Kubernetes
// resync would change them) are in force once the restarted agent is ready: the server now
// admits "other" instead of "client". The change is one of peers, so the server's map is
// patched in place; the endpoints whose policy stayed the same keep theirs untouched too.
TEST_F(EndpointAgentTest, RuleChangedWhileDownIsEnforcedAfterRestart) {
  Process* agent = startAgent("agent");
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent");
  Pod client_pod = addPod("client", "10.200.0.10");
  Pod server = addPod("server", "10.200.0.11");
  Pod other = addPod("other", "10.200.0.12");
  ASSERT_TRUE(attach(client_pod, "client").ok()) << log("agent");
  ASSERT_TRUE(attach(server, "server").ok()) << log("agent");
  ASSERT_TRUE(attach(other, "other").ok()) << log("agent");
  importServerPolicy("client");
  auto listener = testing::listenTcp(server.netns, server.ip, kPort);
  ASSERT_TRUE(listener.ok());
  EXPECT_TRUE(canConnect(client_pod, server));
  EXPECT_FALSE(canConnect(other, server, 500ms));
  auto maps_before = innerPolicyMaps();

  agent->signal(SIGKILL);
  ASSERT_TRUE(agent->wait(5s).ok());
  std::string path = node_->stateDir() + "/state/policy.json";
  auto rules = readFile(path);
  ASSERT_TRUE(rules.ok()) << rules.error().toString();
  std::string edited = *rules;
  size_t at = edited.find("\"client\"");
  ASSERT_NE(at, std::string::npos) << edited;
  edited.replace(at, 8, "\"other\"");
  ASSERT_TRUE(writeFileAtomic(path, edited, 0600).ok());

  Process* second = startAgent("agent2");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(waitReady(second)) << log("agent2");
  EXPECT_TRUE(canConnect(other, server)) << log("agent2");
  EXPECT_FALSE(canConnect(client_pod, server, 500ms));
  EXPECT_EQ(innerPolicyMaps(), maps_before) << "changed in place, not swapped";
  second->signal(SIGTERM);
  EXPECT_EQ(*second->wait(10s), 0) << log("agent2");
}

// The agent's own Hubble server and metrics endpoints (wired in main.cc): flows carry the pods
// the endpoint manager knows and the verdicts the datapath took; cilium_* gauges and the
// regeneration histogram come from the control plane.
TEST_F(EndpointAgentTest, AgentServesFlowsAndMetricsForItsEndpoints) {
  const std::string hubble_sock = dir_ + "/run/hubble.sock";
  // Both listen inside the node namespace, where these ports are free.
  Process* agent = startAgent("agent", {"--enable-hubble", "--hubble-socket-path=" + hubble_sock,
                                        "--hubble-listen-address=", "--monitor-aggregation=none",
                                        "--prometheus-serve-addr=127.0.0.1:9962",
                                        "--hubble-metrics-server=127.0.0.1:9965"});
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent");
  Pod client_pod = addPod("client", "10.200.0.10");
  Pod server = addPod("server", "10.200.0.11");
  Pod other = addPod("other", "10.200.0.12");
  ASSERT_TRUE(attach(client_pod, "client").ok()) << log("agent");
  ASSERT_TRUE(attach(server, "server").ok()) << log("agent");
  ASSERT_TRUE(attach(other, "other").ok()) << log("agent");
  auto listener = testing::listenTcp(server.netns, server.ip, kPort);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();
  importServerPolicy("client");

  auto hubble = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {CILIUM_HUBBLE_BINARY, "--server", "unix://" + hubble_sock});
    auto r = run(args, {}, 30s);
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : RunOutput{};
  };
  // Flows reach the ring asynchronously: send and look until both verdicts are there.
  RunOutput dropped, forwarded;
  for (int i = 0; i < 40; i++) {
    EXPECT_TRUE(canConnect(client_pod, server));
    (void)canConnect(other, server, 200ms);
    dropped = hubble({"observe", "--all", "--verdict", "DROPPED", "--from-pod", "default/other"});
    forwarded = hubble({"observe", "--all", "--verdict", "FORWARDED", "--from-pod",
                        "default/client", "--to-pod", "default/server"});
    if (dropped.out.find("Policy denied") != std::string::npos &&
        forwarded.out.find("default/server") != std::string::npos) {
      break;
    }
  }
  EXPECT_NE(dropped.out.find("default/other:"), std::string::npos) << dropped.out << dropped.err;
  EXPECT_NE(dropped.out.find("-> default/server:" + std::to_string(kPort)), std::string::npos)
      << dropped.out;
  EXPECT_NE(dropped.out.find("Policy denied DROPPED"), std::string::npos) << dropped.out;
  EXPECT_NE(forwarded.out.find("default/client:"), std::string::npos) << forwarded.out;

  // As Hubble: the node name with its cluster, the receiving endpoint's interface on
  // to-endpoint flows, and policy verdicts only where policy is enforced: the server's ingress,
  // never the client's egress, which no rule selects.
  auto json = hubble({"observe", "--all", "-o", "json", "--from-pod", "default/client", "--to-pod",
                      "default/server"});
  int to_endpoint = 0, verdicts = 0;
  std::istringstream lines(json.out);
  for (std::string line; std::getline(lines, line);) {
    auto f = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(f.is_discarded()) << line;
    if (!f.contains("flow")) continue;
    f = f["flow"];
    EXPECT_EQ(f.value("node_name", ""), "default/node-1") << line;
    if (f.value("trace_observation_point", "") == "TO_ENDPOINT") {
      to_endpoint++;
      EXPECT_EQ(f["interface"].value("name", ""), server.host_ifname) << line;
    }
    if (f["event_type"].value("type", 0) == 5) {  // policy verdict
      verdicts++;
      EXPECT_EQ(f.value("traffic_direction", ""), "INGRESS") << line;
      EXPECT_EQ(f["destination"].value("pod_name", ""), "server") << line;
    }
  }
  EXPECT_GT(to_endpoint, 0) << json.out;
  EXPECT_GT(verdicts, 0) << json.out;
  // The CLI as users type it: node names in compact output, the namespaces of stored flows.
  auto named = hubble({"observe", "--all", "--print-node-name", "--from-pod", "default/client"});
  EXPECT_NE(named.out.find(" [default/node-1]: default/client:"), std::string::npos) << named.out;
  auto not_traces =
      hubble({"observe", "--all", "--from-pod", "default/client", "--not", "--type", "trace"});
  EXPECT_NE(not_traces.out.find("policy-verdict:"), std::string::npos) << not_traces.out;
  EXPECT_EQ(not_traces.out.find("to-endpoint"), std::string::npos) << not_traces.out;
  auto namespaces = hubble({"list", "namespaces"});
  EXPECT_NE(namespaces.out.find("CLUSTER"), std::string::npos) << namespaces.out;
  EXPECT_NE(namespaces.out.find(" default\n"), std::string::npos) << namespaces.out;
  // cilium-dbg status reports the running Hubble.
  auto status = dbg({"status"});
  ASSERT_TRUE(status.ok());
  EXPECT_NE(status->out.find("Hubble:                  Ok"), std::string::npos) << status->out;

  auto scrape = [&](int port) {
    auto r = topo_->exec(topo_->nodeNetns(),
                         {"curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->out : std::string();
  };
  std::string agent_metrics = scrape(9962);
  EXPECT_NE(agent_metrics.find("\ncilium_endpoint 3\n"), std::string::npos) << agent_metrics;
  EXPECT_NE(agent_metrics.find("cilium_endpoint_state{endpoint_state=\"ready\"} 3"),
            std::string::npos);
  EXPECT_NE(
      agent_metrics.find("cilium_policy_endpoint_enforcement_status{enforcement=\"ingress\"} 1"),
      std::string::npos)
      << agent_metrics;
  EXPECT_NE(agent_metrics.find("cilium_policy 1\n"), std::string::npos);
  EXPECT_NE(
      agent_metrics.find("cilium_endpoint_regeneration_time_stats_seconds_count{scope=\"total\"}"),
      std::string::npos);
  EXPECT_NE(
      agent_metrics.find("cilium_drop_count_total{reason=\"Policy denied\",direction=\"INGRESS\"}"),
      std::string::npos);
  EXPECT_NE(agent_metrics.find("cilium_identity{type=\"cluster_local\"} 3"), std::string::npos);
  // Three endpoints and the host's addresses in a 64k-entry map: a small fraction, not zero.
  auto pressure = agent_metrics.find("cilium_bpf_map_pressure{map_name=\"cilium_lxc\"} ");
  ASSERT_NE(pressure, std::string::npos) << log("agent");
  double ratio = std::stod(agent_metrics.substr(agent_metrics.find("} ", pressure) + 2));
  EXPECT_GT(ratio, 0.0);
  EXPECT_LT(ratio, 0.001);
  // Full map names (the kernel keeps 15 characters), conntrack from the GC's first pass at start.
  for (const char* map :
       {"cilium_ct4_global", "cilium_ct_any4_global", "cilium_ct6_global", "cilium_ct_any6_global"})
    EXPECT_NE(agent_metrics.find("cilium_bpf_map_pressure{map_name=\"" + std::string(map) + "\"} "),
              std::string::npos)
        << map << "\n"
        << agent_metrics;
  // IPAM's allocations (the three pods' addresses at least) and the one policy import.
  auto value = [&](const std::string& series) {
    auto at = agent_metrics.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(agent_metrics.substr(at + series.size() + 2));
  };
  EXPECT_GE(value("cilium_ip_addresses{family=\"ipv4\"}"), 3.0) << agent_metrics;
  EXPECT_EQ(value("cilium_policy_change_total{outcome=\"success\"}"), 1.0) << agent_metrics;
  std::string hubble_metrics = scrape(9965);
  EXPECT_NE(hubble_metrics.find("hubble_flows_processed_total"), std::string::npos)
      << hubble_metrics;

  agent->signal(SIGTERM);
  EXPECT_EQ(*agent->wait(10s), 0) << log("agent");
}

}  // namespace
}  // namespace cilium
