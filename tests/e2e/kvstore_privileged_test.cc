// kvstore mode with the real binaries. First: a cilium-agent started with --kvstore=etcd
// --identity-allocation-mode=kvstore in a node namespace, a real etcd beside it (on the node
// namespace's loopback), and another node simulated by writing its keys with etcdctl. The agent
// publishes its node and its pod (with an identity allocated in etcd), learns the other node,
// its pod (ipcache, with the tunnel endpoint) and its identity, forgets a deleted pod, and keeps
// running through an etcd restart, converging afterwards. Then three agents in three node
// namespaces on one underlay, pods pinging each other across nodes through the VXLAN overlay
// with nothing but what the agents learned from etcd (the node namespaces have no route to the
// other nodes' pods).
#include <signal.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using testing::eventually;

class KvstoreTest : public testing::AgentNodeTest {
 protected:
  KvstoreTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void SetUp() override {
    AgentNodeTest::SetUp();
    if (HasFatalFailure()) return;
    if (run({"sh", "-c", "command -v etcd"}).valueOr(RunOutput{}).exit_code != 0) {
      if (const char* r = std::getenv("CILIUM_TEST_REQUIRE_PRIVILEGED"); r && std::string(r) == "1")
        FAIL() << "etcd is not installed";
      GTEST_SKIP() << "etcd is not installed";
    }
    startEtcd();
    std::ofstream(dir_ + "/etcd.config") << "endpoints:\n- http://127.0.0.1:2379\n";
  }

  void startEtcd() {
    auto p = topo_->spawnIn(
        topo_->nodeNetns(),
        {"etcd", "--name", "e2e", "--data-dir", dir_ + "/etcd", "--listen-client-urls",
         "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
         "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls",
         "http://127.0.0.1:2380", "--initial-cluster", "e2e=http://127.0.0.1:2380", "--log-level",
         "warn", "--logger", "zap"},
        "etcd");
    ASSERT_TRUE(p.ok()) << p.error().toString();
    etcd_ = *p;
    ASSERT_TRUE(eventually([&] { return etcdctl({"endpoint", "health"}).ok(); }, 20s));
  }

  // etcdctl in the node namespace; the output on success.
  Result<std::string> etcdctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"etcdctl", "--endpoints=http://127.0.0.1:2379",
                                     "--command-timeout=2s"};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions so;
    so.netns = topo_->nodeNetns();
    so.extra_env = {"ETCDCTL_API=3"};
    return runChecked(argv, so, 10s);
  }
  std::string get(const std::string& key, bool prefix = false) {
    std::vector<std::string> a = {"get", key};
    if (prefix) a.push_back("--prefix");
    return etcdctl(a).valueOr(std::string());
  }

  Result<RunOutput> dbg(std::vector<std::string> args) {
    std::vector<std::string> argv = {CILIUM_DBG_BINARY, "-H", "unix://" + sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  std::string ipcacheList() { return dbg({"bpf", "ipcache", "list"}).valueOr(RunOutput{}).out; }

  Process* etcd_ = nullptr;
};

TEST_F(KvstoreTest, SharesNodesEndpointsAndIdentitiesThroughEtcd) {
  // The other node: its node key, a pod and the pod's identity, as its agent would write them.
  ASSERT_TRUE(etcdctl({"put", "cilium/state/identities/v1/id/5000",
                       "k8s:app=remote;k8s:io.kubernetes.pod.namespace=default;"})
                  .ok());
  ASSERT_TRUE(
      etcdctl(
          {"put", "cilium/state/nodes/v1/default/node-2",
           R"({"Name":"node-2","Cluster":"default","IPAddresses":[{"Type":"InternalIP","IP":"172.31.0.2"}],"IPv4AllocCIDR":{"IP":"10.201.0.0","Mask":"////AA=="},"BootID":"x"})"})
          .ok());
  ASSERT_TRUE(
      etcdctl(
          {"put", "cilium/state/ip/v1/default/10.201.0.5",
           R"({"IP":"10.201.0.5","Mask":null,"HostIP":"172.31.0.2","ID":5000,"Key":0,"Metadata":"","K8sNamespace":"default","K8sPodName":"remote"})"})
          .ok());

  Process* agent = node_->startReady(
      "agent", {"--kvstore=etcd", "--kvstore-opt=etcd.config=" + dir_ + "/etcd.config",
                "--identity-allocation-mode=kvstore", "--kvstore-lease-ttl=10"});
  ASSERT_NE(agent, nullptr);

  // Status: Cilium's KVStore line.
  auto st = dbg({"status"});
  ASSERT_TRUE(st.ok());
  EXPECT_NE(st->out.find("KVStore:"), std::string::npos) << st->out;
  EXPECT_NE(st->out.find("etcd: 1/1 connected"), std::string::npos) << st->out;

  // The other node, its pod (tunnel endpoint = its node) and its identity are known here.
  auto nodes = node_->client().clusterNodes();
  ASSERT_TRUE(nodes.ok()) << nodes.error().toString();
  bool found = false;
  for (const auto& n : nodes->nodes_added) found |= n.name == "node-2";
  EXPECT_TRUE(found);
  EXPECT_TRUE(eventually([&] {
    auto l = ipcacheList();
    return l.find("10.201.0.5/32") != std::string::npos &&
           l.find("tunnelendpoint=172.31.0.2") != std::string::npos;
  })) << ipcacheList();
  auto remote = node_->client().getIdentity("5000");
  ASSERT_TRUE(remote.ok()) << remote.error().toString();

  // This node's key is in etcd.
  EXPECT_NE(get("cilium/state/nodes/v1/default/", true).find("\"Name\""), std::string::npos);

  // A pod here: its identity is allocated in etcd and its address published.
  auto pod = topo_->addPod("a", "10.200.0.10");
  ASSERT_TRUE(pod.ok()) << pod.error().toString();
  api::EndpointChangeRequest req;
  req.container_id = "ctr-a";
  req.container_interface_name = "eth0";
  req.interface_name = pod->host_ifname;
  req.interface_index = pod->host_ifindex;
  req.mac = pod->mac;
  req.host_mac = pod->host_mac;
  req.addressing = api::AddressPair{};
  req.addressing->ipv4 = pod->ip;
  req.k8s_namespace = "default";
  req.k8s_pod_name = "a";
  req.netns = pod->netns;
  req.labels = {"k8s:app=local"};
  ASSERT_TRUE(node_->client().putEndpoint(*api::parseEndpointRef("container-id:ctr-a"), req).ok())
      << node_->log("agent");
  ASSERT_TRUE(eventually([&] {
    return get("cilium/state/ip/v1/default/10.200.0.10").find("\"ID\"") != std::string::npos;
  })) << get("cilium/state/ip/v1/default/", true);
  std::string ids = get("cilium/state/identities/v1/id/", true);
  EXPECT_NE(ids.find("k8s:app=local;"), std::string::npos) << ids;
  EXPECT_NE(get("cilium/state/identities/v1/value/", true).find("k8s:app=local;"),
            std::string::npos);

  // The other node's pod is deleted: gone here too.
  ASSERT_TRUE(etcdctl({"del", "cilium/state/ip/v1/default/10.201.0.5"}).ok());
  EXPECT_TRUE(eventually([&] { return ipcacheList().find("10.201.0.5/32") == std::string::npos; }));

  // etcd killed: the agent keeps running and serving; a new remote pod after the restart arrives.
  etcd_->signal(SIGKILL);
  (void)etcd_->wait(10s);
  EXPECT_TRUE(eventually(
      [&] {
        auto s = dbg({"status"});
        return s.ok() && s->out.find("0/1 connected") != std::string::npos;
      },
      30s));
  EXPECT_TRUE(agent->running());
  EXPECT_TRUE(node_->client().healthz().ok());
  startEtcd();
  ASSERT_TRUE(etcdctl({"put", "cilium/state/ip/v1/default/10.201.0.6",
                       R"({"IP":"10.201.0.6","HostIP":"172.31.0.2","ID":5000})"})
                  .ok());
  EXPECT_TRUE(
      eventually([&] { return ipcacheList().find("10.201.0.6/32") != std::string::npos; }, 30s))
      << node_->log("agent");
  EXPECT_TRUE(eventually(
      [&] {
        auto s = dbg({"status"});
        return s.ok() && s->out.find("1/1 connected") != std::string::npos;
      },
      30s));
}

// etcd down when the agent starts: it starts anyway (status says so), and once etcd is up it
// publishes its node and learns what is there.
TEST_F(KvstoreTest, StartsWithoutEtcdAndConvergesWhenItComes) {
  etcd_->signal(SIGKILL);
  (void)etcd_->wait(10s);
  Process* agent = node_->startReady(
      "agent", {"--kvstore=etcd", "--kvstore-opt=etcd.config=" + dir_ + "/etcd.config",
                "--identity-allocation-mode=kvstore", "--kvstore-lease-ttl=10"});
  ASSERT_NE(agent, nullptr);
  auto st = dbg({"status"});
  ASSERT_TRUE(st.ok());
  EXPECT_NE(st->out.find("0/1 connected"), std::string::npos) << st->out;
  startEtcd();
  ASSERT_TRUE(etcdctl({"put", "cilium/state/ip/v1/default/10.201.0.7",
                       R"({"IP":"10.201.0.7","HostIP":"172.31.0.2","ID":5000})"})
                  .ok());
  EXPECT_TRUE(eventually(
      [&] {
        return get("cilium/state/nodes/v1/default/", true).find("\"Name\"") != std::string::npos;
      },
      30s))
      << node_->log("agent");
  EXPECT_TRUE(
      eventually([&] { return ipcacheList().find("10.201.0.7/32") != std::string::npos; }, 30s))
      << node_->log("agent");
  EXPECT_TRUE(eventually(
      [&] {
        auto s = dbg({"status"});
        return s.ok() && s->out.find("1/1 connected") != std::string::npos;
      },
      30s));
}

// Three real agents in three node namespaces on one underlay (a bridge), etcd on node 1's
// underlay address, routing-mode=tunnel: each agent learns the others' pods from etcd into its
// ipcache with the hosting node as tunnel endpoint, and pods ping each other across nodes through
// the VXLAN overlay; identity numbers agree on every node; a pod deleted on one node and a node
// that goes away disappear everywhere.
class KvstoreClusterTest : public ::testing::Test {
 protected:
  struct Node {
    std::unique_ptr<testing::Topology> topo;
    std::optional<testing::AgentNode> agent;
    Process* process = nullptr;
    testing::Pod pod;
    std::string underlay;
    std::string name;
    int octet = 0;  // pods in 10.<octet>.0.0/24
  };

  void SetUp() override {
    if (run({"sh", "-c", "command -v etcd"}).valueOr(RunOutput{}).exit_code != 0) {
      if (const char* r = std::getenv("CILIUM_TEST_REQUIRE_PRIVILEGED"); r && std::string(r) == "1")
        FAIL() << "etcd is not installed";
      GTEST_SKIP() << "etcd is not installed";
    }
    for (int i = 0; i < 3; i++) {
      auto topo = testing::Topology::create(201 + i);
      ASSERT_TRUE(topo.ok()) << topo.error().toString();
      nodes_[i].topo = std::move(*topo);
      nodes_[i].underlay = "172.31.0." + std::to_string(i + 1);
      nodes_[i].name = "kv-node-" + std::to_string(i + 1);
      nodes_[i].octet = 201 + i;
    }
    buildUnderlay();
    // etcd on node 1, reachable from the others over the underlay.
    Node& n1 = nodes_[0];
    std::string url = "http://" + n1.underlay + ":2379";
    auto etcd = n1.topo->spawnIn(
        n1.topo->nodeNetns(),
        {"etcd", "--name", "e2e", "--data-dir", n1.topo->tmpDir() + "/etcd", "--listen-client-urls",
         url, "--advertise-client-urls", url, "--listen-peer-urls", "http://127.0.0.1:2380",
         "--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--initial-cluster",
         "e2e=http://127.0.0.1:2380", "--log-level", "warn", "--logger", "zap"},
        "etcd");
    ASSERT_TRUE(etcd.ok()) << etcd.error().toString();
    etcd_config_ = n1.topo->tmpDir() + "/etcd.config";
    std::ofstream(etcd_config_) << "endpoints:\n- " << url << "\n";
    ASSERT_TRUE(eventually([&] { return etcdctl({"endpoint", "health"}).ok(); }, 20s));
    for (int i = 0; i < 3; i++) {
      Node& n = nodes_[i];
      auto agent = testing::AgentNode::create(*n.topo, CILIUM_AGENT_BINARY);
      ASSERT_TRUE(agent.ok()) << agent.error().toString();
      n.agent.emplace(std::move(*agent));
      startAgent(n);
      ASSERT_NE(n.process, nullptr);
      auto pod = n.topo->addPod("p", "10." + std::to_string(201 + i) + ".0.10");
      ASSERT_TRUE(pod.ok()) << pod.error().toString();
      n.pod = *pod;
      ASSERT_TRUE(attach(n, "app" + std::to_string(i % 2)).ok()) << n.agent->log("agent");
    }
  }

  void startAgent(Node& n) {
    auto argv = n.agent->args({"--ipv4-range=10." + std::to_string(n.octet) + ".0.0/24",
                               "--routing-mode=tunnel", "--kvstore=etcd",
                               "--kvstore-opt=etcd.config=" + etcd_config_,
                               "--identity-allocation-mode=kvstore", "--kvstore-lease-ttl=5",
                               "--identity-gc-interval=1"});
    for (auto& a : argv)
      if (a.rfind("--node-name=", 0) == 0) a = "--node-name=" + n.name;
    auto p = n.topo->spawnIn(n.topo->nodeNetns(), argv, "agent");
    ASSERT_TRUE(p.ok()) << p.error().toString();
    ASSERT_TRUE(n.agent->waitReady(*p, 30s)) << n.agent->log("agent");
    n.process = *p;
  }

  Status attach(Node& n, const std::string& app) {
    api::EndpointChangeRequest req;
    req.container_id = "ctr-" + n.name;
    req.container_interface_name = "eth0";
    req.interface_name = n.pod.host_ifname;
    req.interface_index = n.pod.host_ifindex;
    req.mac = n.pod.mac;
    req.host_mac = n.pod.host_mac;
    req.addressing = api::AddressPair{};
    req.addressing->ipv4 = n.pod.ip;
    req.k8s_namespace = "default";
    req.k8s_pod_name = "p-" + n.name;
    req.netns = n.pod.netns;
    req.labels = {"k8s:app=" + app};
    return n.agent->client().putEndpoint(*api::parseEndpointRef("container-id:" + req.container_id),
                                         req);
  }

  void buildUnderlay() {
    std::string fabric = nodes_[0].topo->prefix() + "-ul";
    ASSERT_TRUE(runChecked({"ip", "netns", "add", fabric}).ok());
    fabric_ = fabric;
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"ip", "-n", fabric, "link", "add", "br0", "type", "bridge"},
             {"ip", "-n", fabric, "link", "set", "br0", "up"}})
      ASSERT_TRUE(runChecked(argv).ok());
    for (int i = 0; i < 3; i++) {
      std::string ns = nodes_[i].topo->nodeNetns();
      std::string nsname = ns.substr(ns.rfind('/') + 1);
      std::string port = "ul" + std::to_string(i);
      for (const auto& argv : std::vector<std::vector<std::string>>{
               {"ip", "-n", fabric, "link", "add", port, "type", "veth", "peer", "name", "ul0",
                "netns", nsname},
               {"ip", "-n", fabric, "link", "set", port, "master", "br0", "up"},
               {"ip", "-n", nsname, "addr", "add", nodes_[i].underlay + "/24", "dev", "ul0"},
               {"ip", "-n", nsname, "link", "set", "ul0", "up"}}) {
        auto r = runChecked(argv);
        ASSERT_TRUE(r.ok()) << r.error().toString();
      }
    }
  }

  void TearDown() override {
    for (auto& n : nodes_) n.agent.reset();
    for (auto& n : nodes_) n.topo.reset();
    if (!fabric_.empty()) (void)run({"ip", "netns", "del", fabric_});
  }

  Result<std::string> etcdctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        "etcdctl", "--endpoints=http://" + nodes_[0].underlay + ":2379", "--command-timeout=2s"};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions so;
    so.netns = nodes_[0].topo->nodeNetns();
    so.extra_env = {"ETCDCTL_API=3"};
    return runChecked(argv, so, 10s);
  }
  std::string ipcacheList(Node& n) {
    std::vector<std::string> argv = {CILIUM_DBG_BINARY, "-H",  "unix://" + n.agent->socket(), "bpf",
                                     "ipcache",         "list"};
    return run(argv).valueOr(RunOutput{}).out;
  }
  bool ping(Node& from, Node& to) {
    auto r = from.topo->exec(from.topo->nodeNetns(), {"nsenter", "--net=" + from.pod.netns, "ping",
                                                      "-c", "1", "-W", "2", to.pod.ip});
    return r.ok() && r->exit_code == 0;
  }

  Node nodes_[3];
  std::string fabric_;
  std::string etcd_config_;
};

TEST_F(KvstoreClusterTest, ThreeAgentsShareEndpointsAndPodsPingAcrossNodes) {
  // Every agent: the other two pods, each with its node's underlay address as tunnel endpoint.
  for (auto& n : nodes_)
    for (auto& other : nodes_) {
      if (&other == &n) continue;
      EXPECT_TRUE(eventually([&] {
        auto l = ipcacheList(n);
        auto at = l.find(other.pod.ip + "/32");
        return at != std::string::npos &&
               l.find("tunnelendpoint=" + other.underlay, at) != std::string::npos;
      })) << n.name
          << " does not know " << other.pod.ip << ":\n"
          << ipcacheList(n);
    }
  // Same labels (app0 on nodes 1 and 3): one number everywhere.
  auto id1 = nodes_[0].agent->client().listIdentities();
  ASSERT_TRUE(id1.ok());
  for (auto& n : nodes_) {
    auto ids = n.agent->client().listIdentities();
    ASSERT_TRUE(ids.ok());
    for (const auto& want : *id1) {
      if (want.id < 256) continue;
      EXPECT_TRUE(eventually([&] {
        auto now = n.agent->client().listIdentities();
        if (!now.ok()) return false;
        for (const auto& got : *now)
          if (got.id == want.id && got.labels == want.labels) return true;
        return false;
      })) << n.name
          << " lacks identity " << want.id;
    }
  }
  // Pods reach each other across nodes through the overlay.
  EXPECT_TRUE(eventually([&] { return ping(nodes_[0], nodes_[1]); }, 20s));
  EXPECT_TRUE(eventually([&] { return ping(nodes_[2], nodes_[0]); }, 20s));

  // Node 3's pod is deleted: gone from the others.
  ASSERT_TRUE(nodes_[2]
                  .agent->client()
                  .deleteEndpoint(*api::parseEndpointRef("container-id:ctr-" + nodes_[2].name))
                  .ok());
  for (int i = 0; i < 2; i++)
    EXPECT_TRUE(eventually([&] {
      return ipcacheList(nodes_[i]).find(nodes_[2].pod.ip + "/32") == std::string::npos;
    })) << ipcacheList(nodes_[i]);

  // Node 2 goes away (killed: its lease expires after 5 s): its node and pod disappear.
  nodes_[1].process->signal(SIGKILL);
  (void)nodes_[1].process->wait(10s);
  EXPECT_TRUE(eventually(
      [&] { return ipcacheList(nodes_[0]).find(nodes_[1].pod.ip + "/32") == std::string::npos; },
      30s))
      << ipcacheList(nodes_[0]);
  EXPECT_TRUE(eventually(
      [&] {
        auto ns = nodes_[0].agent->client().clusterNodes();
        if (!ns.ok()) return false;
        for (const auto& e : ns->nodes_added)
          if (e.name == nodes_[1].name) return false;
        return true;
      },
      30s));
  // Its identity (app1, used by no other node) is collected by the agents' GC, and forgotten by
  // the others; app0 (still used on node 1) stays.
  EXPECT_TRUE(eventually(
      [&] {
        auto ids = etcdctl({"get", "cilium/state/identities/v1/id/", "--prefix"});
        return ids.ok() && ids->find("k8s:app=app1;") == std::string::npos &&
               ids->find("k8s:app=app0;") != std::string::npos;
      },
      30s))
      << etcdctl({"get", "cilium/state/identities/v1/", "--prefix"}).valueOr(std::string());
  EXPECT_TRUE(eventually([&] {
    auto ids = nodes_[0].agent->client().listIdentities();
    if (!ids.ok()) return false;
    for (const auto& i : *ids)
      for (const auto& l : i.labels)
        if (l == "k8s:app=app1") return false;
    return true;
  }));
}

}  // namespace
}  // namespace cilium
