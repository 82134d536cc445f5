// netns tier: the cilium-agent binary in a node namespace, as it runs on a node: it mounts and
// uses its pin directory, serves the API and cilium-dbg, writes the CNI configuration when ready,
// shuts down cleanly on SIGTERM/SIGINT, restores IPAM after a restart, and sets up (and tears
// down) the VXLAN overlay device with routing-mode=tunnel.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/bpf/attach.h"
#include "agent/bpf/fs.h"
#include "agent/common/files.h"
#include "agent/common/netns.h"
#include "agent/datapath/netlink.h"
#include "api/client/client.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/netns.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;

class AgentTest : public testing::AgentNodeTest {
 protected:
  AgentTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  std::vector<std::string> agentArgs() {
    return node_->args({"--write-cni-conf-when-ready=" + dir_ + "/net.d/05-cilium.conflist"});
  }

  Process* startAgent(const std::string& log) {
    auto p = topo_->spawnIn(topo_->nodeNetns(), agentArgs(), log);
    EXPECT_TRUE(p.ok()) << p.error().toString();
    return p.ok() ? *p : nullptr;
  }

  api::Client client() { return node_->client(2s); }
  bool waitReady(Process* agent) { return node_->waitReady(agent); }

  std::string log(const std::string& name) { return node_->log(name); }
};

TEST_F(AgentTest, ServesThenShutsDownCleanlyOnSigterm) {
  auto t0 = std::chrono::steady_clock::now();
  Process* agent = startAgent("agent1");
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(waitReady(agent)) << log("agent1");
  auto ready_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);

  // Its pin directory is on bpffs, and the API socket has mode 0660.
  EXPECT_TRUE(bpf::isBpffs(pin_));
  struct stat st {};
  ASSERT_EQ(::stat(sock_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  // The CNI configuration appears once the agent is ready.
  auto conf = readFile(dir_ + "/net.d/05-cilium.conflist");
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(nlohmann::json::parse(*conf)["plugins"][0]["type"], "cilium-cni");

  // cilium-dbg against the running agent, as an operator would run it.
  auto dbg = run({CILIUM_DBG_BINARY, "-H", "unix://" + sock_, "status", "--brief"});
  ASSERT_TRUE(dbg.ok());
  EXPECT_EQ(dbg->exit_code, 0) << dbg->err;
  EXPECT_EQ(dbg->out, "OK\n");
  auto alloc =
      run({CILIUM_DBG_BINARY, "-H", sock_, "ipam", "allocate", "--owner", "default/xwing"});
  ASSERT_TRUE(alloc.ok());
  EXPECT_EQ(alloc->out, "10.200.0.2 gateway 10.200.0.1\n") << alloc->err;
  auto cfg = run({CILIUM_DBG_BINARY, "-H", sock_, "config", "-a"});
  ASSERT_TRUE(cfg.ok());
  EXPECT_NE(cfg->out.find("bpf-pin-dir"), std::string::npos);
  EXPECT_NE(cfg->out.find(pin_), std::string::npos);

  auto t1 = std::chrono::steady_clock::now();
  agent->signal(SIGTERM);
  auto code = agent->wait(10s);
  ASSERT_TRUE(code.ok()) << code.error().toString();
  EXPECT_EQ(*code, 0) << log("agent1");
  auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t1);
  // Numbers for docs, not assertions.
  std::printf("agent: spawn to ready %lld ms, SIGTERM to exit %lld ms\n",
              static_cast<long long>(ready_ms.count()), static_cast<long long>(stop_ms.count()));
  EXPECT_NE(::stat(sock_.c_str(), &st), 0) << "the socket is removed";
  auto state = readFile(dir_ + "/run/state/ipam.json");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(nlohmann::json::parse(*state)["pools"]["ipv4"]["allocations"]["10.200.0.2"],
            "default/xwing");
  EXPECT_NE(log("agent1").find("received signal=SIGTERM"), std::string::npos);
}

TEST_F(AgentTest, RestartRestoresIpamAndSigintStopsIt) {
  Process* first = startAgent("first");
  ASSERT_TRUE(waitReady(first)) << log("first");
  ASSERT_TRUE(client().ipamAllocate(IpFamily::kV4, "default/xwing").ok());
  ASSERT_TRUE(client().ipamAllocateIp(*IpAddr::parse("10.200.0.99"), "c99").ok());
  first->signal(SIGTERM);
  ASSERT_EQ(*first->wait(10s), 0);

  Process* second = startAgent("second");
  ASSERT_TRUE(waitReady(second)) << log("second");
  auto s = client().healthz();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ipam->allocations, (std::map<std::string, std::string>{
                                      {"10.200.0.2", "default/xwing"}, {"10.200.0.99", "c99"}}));
  EXPECT_EQ(s->ipam->status, "IPv4: 2/253 allocated from 10.200.0.0/24");
  second->signal(SIGINT);
  ASSERT_EQ(*second->wait(10s), 0) << log("second");
}

TEST_F(AgentTest, TunnelModeMakesTheOverlayDeviceAndNativeModeRemovesIt) {
  namespace nl = datapath::netlink;
  auto vxlan = [&]() {
    return runInNetnsValue<nl::Link>(topo_->nodeNetns(),
                                     [] { return nl::linkByName("cilium_vxlan"); });
  };
  // No routing-mode given: tunnel is the default, as in Cilium.
  auto tunnel = topo_->spawnIn(topo_->nodeNetns(), node_->args({"--tunnel-port=8473"}), "tunnel");
  ASSERT_TRUE(tunnel.ok());
  ASSERT_TRUE(waitReady(*tunnel)) << log("tunnel");
  auto dev = vxlan();
  ASSERT_TRUE(dev.ok()) << dev.error().toString();
  EXPECT_EQ(dev->kind, "vxlan");
  EXPECT_TRUE(dev->vxlan_external) << "collect_md: programs choose remote and VNI per packet";
  EXPECT_EQ(dev->vxlan_port, 8473);
  EXPECT_TRUE(dev->up);
  auto progs = runInNetnsValue<std::vector<uint32_t>>(topo_->nodeNetns(), [&] {
    return bpf::tcxProgramIds(dev->ifindex, bpf::TcDirection::kIngress);
  });
  ASSERT_TRUE(progs.ok()) << progs.error().toString();
  EXPECT_EQ(progs->size(), 1u) << "bpf_overlay on the device's ingress";
  // Pods get room for the VXLAN headers.
  auto cfg = client().getConfig();
  ASSERT_TRUE(cfg.ok() && cfg->status);
  EXPECT_EQ(cfg->status->device_mtu, 1450);
  (*tunnel)->signal(SIGTERM);
  ASSERT_EQ(*(*tunnel)->wait(10s), 0);
  EXPECT_TRUE(vxlan().ok()) << "the overlay outlives the agent, as the programs do";

  auto native_agent =
      topo_->spawnIn(topo_->nodeNetns(), node_->args({"--routing-mode=native"}), "native");
  ASSERT_TRUE(native_agent.ok());
  Process* native = *native_agent;
  ASSERT_TRUE(waitReady(native)) << log("native");
  auto gone = vxlan();
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  cfg = client().getConfig();
  ASSERT_TRUE(cfg.ok() && cfg->status);
  EXPECT_EQ(cfg->status->device_mtu, 1500);
}

TEST_F(AgentTest, RefusesASecondAgentAndBadConfiguration) {
  Process* first = startAgent("first");
  ASSERT_TRUE(waitReady(first)) << log("first");
  auto second = topo_->exec(topo_->nodeNetns(), agentArgs());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->exit_code, 1);
  // Refused at its first step (the state dir's lock), naming the running agent.
  EXPECT_NE(second->err.find("another cilium-agent (pid " + std::to_string(first->pid())),
            std::string::npos)
      << second->err;
  EXPECT_TRUE(client().healthz().ok()) << "the first agent keeps serving";

  auto bad = run({CILIUM_AGENT_BINARY, "--ipv4-range=10.0.0.0/33"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_EQ(bad->err,
            "cilium-agent: --ipv4-range=10.0.0.0/33 (flag): prefix length 33 is not 0..32\n");

  // A corrupt IPAM state stops the agent rather than handing out addresses twice.
  first->signal(SIGTERM);
  ASSERT_EQ(*first->wait(10s), 0);
  ASSERT_TRUE(writeFileAtomic(dir_ + "/run/state/ipam.json", "{oops").ok());
  auto corrupt = topo_->exec(topo_->nodeNetns(), agentArgs());
  ASSERT_TRUE(corrupt.ok());
  EXPECT_EQ(corrupt->exit_code, 1);
  EXPECT_NE(corrupt->err.find("ipam.json is unreadable"), std::string::npos) << corrupt->err;
  struct stat st {};
  EXPECT_NE(::stat(sock_.c_str(), &st), 0) << "no socket left by the failed start";
}

}  // namespace
}  // namespace cilium
