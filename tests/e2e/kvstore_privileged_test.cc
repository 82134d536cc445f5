// kvstore mode with the real binaries: a cilium-agent started with --kvstore=etcd
// --identity-allocation-mode=kvstore in a node namespace, a real etcd beside it (on the node
// namespace's loopback), and another node simulated by writing its keys with etcdctl. The agent
// publishes its node and its pod (with an identity allocated in etcd), learns the other node,
// its pod (ipcache, with the tunnel endpoint) and its identity, forgets a deleted pod, and keeps
// running through an etcd restart, converging afterwards.
#include <signal.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"

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

}  // namespace
}  // namespace cilium
