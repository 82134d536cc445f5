// AgentNode: a cilium-agent per test, in the node namespace.
#include "tests/harness/agent_node.h"

#include <atomic>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/files.h"

namespace cilium::testing {

Result<AgentNode> AgentNode::create(Topology& topo, std::string binary) {
  AgentNode node(topo, std::move(binary));
  CILIUM_ASSIGN_OR_RETURN(std::string pin, topo.pinDir());
  node.pin_dir_ = pin + "/agent";  // the agent creates its pin directory itself
  node.dir_ = topo.tmpDir();
  node.socket_ = node.dir_ + "/run/cilium.sock";
  return node;
}

std::vector<std::string> AgentNode::args(const std::vector<std::string>& extra) const {
  std::vector<std::string> argv = {binary_, "--state-dir=" + stateDir(), "--socket-path=" + socket_,
                                   "--bpf-pin-dir=" + pin_dir_, "--node-name=node-1"};
  // The default pod CIDR, unless the test gives its own (--ipv4-range=auto: from the cluster).
  bool own_range = false;
  for (const auto& e : extra) own_range |= e.rfind("--ipv4-range", 0) == 0;
  if (!own_range) argv.push_back("--ipv4-range=10.200.0.0/24");
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

Result<Process*> AgentNode::start(const std::string& log, const std::vector<std::string>& extra) {
  return topo_->spawnIn(topo_->nodeNetns(), args(extra), log);
}

bool AgentNode::waitReady(Process* agent, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!agent->running()) return false;
    auto s = client(std::chrono::seconds(1)).healthz();
    if (s.ok() && s->cilium && s->cilium->state == api::StatusState::kOk) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // between polls of /healthz
  }
  return false;
}

Process* AgentNode::startReady(const std::string& log, const std::vector<std::string>& extra) {
  auto p = start(log, extra);
  if (!p.ok()) {
    ADD_FAILURE() << "starting the agent: " << p.error().toString();
    return nullptr;
  }
  if (!waitReady(*p)) {
    ADD_FAILURE() << "the agent did not become ready:\n" << this->log(log);
    return nullptr;
  }
  return *p;
}

api::Client AgentNode::client(std::chrono::milliseconds timeout) const {
  return api::Client(api::ClientOptions{socket_, timeout});
}

Result<RunOutput> AgentNode::cni(const std::string& cni_binary, const CniCall& call) const {
  static std::atomic<int> calls{0};
  nlohmann::json conf = {{"cniVersion", "1.0.0"},
                         {"name", "cilium"},
                         {"type", "cilium-cni"},
                         {"socket-path", socket_},
                         {"log-file", dir_ + "/cni.log"}};
  conf.update(call.extra);
  std::string conf_path = dir_ + "/cni-conf-" + std::to_string(calls++) + ".json";
  std::ofstream(conf_path) << conf.dump();
  SpawnOptions opts;
  opts.netns = topo_->nodeNetns();
  opts.extra_env = {"CNI_COMMAND=" + call.command,
                    "CNI_CONTAINERID=" + call.container,
                    "CNI_NETNS=" + call.netns,
                    "CNI_IFNAME=eth0",
                    "CNI_PATH=/opt/cni/bin",
                    "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=" + call.pod_namespace +
                        ";K8S_POD_NAME=" + call.pod};
  opts.stdin_path = conf_path;
  return run({cni_binary}, opts, std::chrono::seconds(60));
}

std::string AgentNode::log(const std::string& name) const {
  return readFile(dir_ + "/" + name + ".err").valueOr(std::string());
}

void AgentNodeTest::SetUp() {
  auto topo = Topology::create();
  ASSERT_TRUE(topo.ok()) << topo.error().toString();
  topo_ = std::move(*topo);
  auto node = AgentNode::create(*topo_, binary_);
  ASSERT_TRUE(node.ok()) << node.error().toString();
  node_.emplace(std::move(*node));
  pin_ = node_->pinDir();
  dir_ = node_->dir();
  sock_ = node_->socket();
}

}  // namespace cilium::testing
