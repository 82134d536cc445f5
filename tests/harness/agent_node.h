// A cilium-agent in a Topology's node namespace, with its own state dir, REST socket and bpffs
// pin dir under the test's scratch space: what netns tests need to start, restart and talk to
// an agent.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "tests/harness/netns.h"

namespace cilium::testing {

class AgentNode {
 public:
  // `topo` must outlive this object; `binary` is the cilium-agent to run.
  static Result<AgentNode> create(Topology& topo, std::string binary);

  const std::string& dir() const { return dir_; }         // the test's scratch directory
  const std::string& socket() const { return socket_; }   // <dir>/run/cilium.sock
  const std::string& pinDir() const { return pin_dir_; }  // created by the agent
  std::string stateDir() const { return dir_ + "/run"; }

  // The agent's command line: its directories, node name, pod CIDR 10.200.0.0/24 (unless
  // `extra` has an --ipv4-range of its own), then `extra`.
  std::vector<std::string> args(const std::vector<std::string>& extra = {}) const;
  // Starts an agent in the node namespace (stdout/stderr in <dir>/<log>.out/.err); the topology
  // stops it at the end of the test.
  Result<Process*> start(const std::string& log, const std::vector<std::string>& extra = {});
  // Polls /healthz until the agent reports Ok; false when it exits or `timeout` passes.
  bool waitReady(Process* agent, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // start() and waitReady(); nullptr (with a test failure naming the log) when not ready.
  Process* startReady(const std::string& log, const std::vector<std::string>& extra = {});

  api::Client client(std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;

  // Runs cilium-cni (`cni_binary`) as kubelet does: CNI_* environment with the pod's namespace
  // and name in CNI_ARGS, interface eth0, the plugin configuration (this agent's socket, a log
  // file in dir(), `extra` merged in) on stdin, inside the node namespace.
  struct CniCall {
    std::string command;  // ADD, DEL, CHECK, ...
    std::string container;
    std::string netns;  // the sandbox's namespace path
    std::string pod_namespace = "default";
    std::string pod;
    nlohmann::json extra = nlohmann::json::object();
  };
  Result<RunOutput> cni(const std::string& cni_binary, const CniCall& call) const;
  // What an agent wrote to stderr, for failure messages.
  std::string log(const std::string& name) const;

 private:
  AgentNode(Topology& topo, std::string binary) : topo_(&topo), binary_(std::move(binary)) {}
  Topology* topo_;
  std::string binary_;
  std::string dir_, socket_, pin_dir_;
};

// A gtest fixture with a fresh Topology and an AgentNode for each test.
class AgentNodeTest : public ::testing::Test {
 protected:
  explicit AgentNodeTest(std::string binary) : binary_(std::move(binary)) {}
  void SetUp() override;

  std::unique_ptr<Topology> topo_;
  std::optional<AgentNode> node_;
  std::string pin_, dir_, sock_;  // node_'s pin dir, scratch dir and socket

 private:
  std::string binary_;
};

}  // namespace cilium::testing
