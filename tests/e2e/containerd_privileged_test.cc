// e2e tier: a real container runtime drives cilium-cni. A private containerd (Debian's, with runc
// and its CRI plugin) runs in the node namespace with our cilium-cni in its CNI bin_dir and the
// conflist the agent writes in its conf_dir; a CRI client built from proto/cri/api.proto creates
// pod sandboxes from a locally built static pause image, as kubelet would. Sandboxes get
// addresses and ready endpoints from the agent, talk over TCP, and Stop/Remove (containerd's two
// DELs, the second with an empty netns) leave no endpoint, address, veth or state file behind.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "api/client/client.h"
#include "cri/api.grpc.pb.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/containerd.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace cri = runtime::v1;

constexpr char kPauseImage[] = "localhost/cilium-test/pause:local";
constexpr uint16_t kPort = 8080;

bool requirePrivileged() {
  const char* v = std::getenv("CILIUM_TEST_REQUIRE_PRIVILEGED");
  return v != nullptr && std::string(v) == "1";
}

// What this test needs from Debian's containerd, runc and containernetworking-plugins ("" when
// all are present).
std::string missingRuntime() {
  std::string missing = testing::missingContainerd();
  if (::access("/usr/lib/cni/loopback", X_OK) != 0)
    missing += std::string(missing.empty() ? "" : ", ") + "/usr/lib/cni/loopback";
  return missing;
}

// The CRI RuntimeService over containerd's Unix socket.
class CriClient {
 public:
  explicit CriClient(const std::string& socket)
      : stub_(cri::RuntimeService::NewStub(
            grpc::CreateChannel("unix://" + socket, grpc::InsecureChannelCredentials()))) {}

  template <class Req, class Resp, class Call>
  grpc::Status call(Call method, const Req& req, Resp* resp,
                    std::chrono::milliseconds timeout = 60s) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    return (stub_.get()->*method)(&ctx, req, resp);
  }

  cri::RuntimeService::Stub* stub() { return stub_.get(); }

 private:
  std::unique_ptr<cri::RuntimeService::Stub> stub_;
};

std::string describe(const grpc::Status& s) {
  return std::to_string(s.error_code()) + ": " + s.error_message();
}

class ContainerdE2eTest : public testing::AgentNodeTest {
 protected:
  ContainerdE2eTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void SetUp() override {
    if (auto missing = missingRuntime(); !missing.empty()) {
      if (requirePrivileged())
        GTEST_FAIL() << "containerd test required but missing " << missing
                     << " (run scripts/install-deps.sh)";
      GTEST_SKIP() << "containerd, runc or the CNI loopback plugin is not installed (" << missing
                   << "); run scripts/install-deps.sh";
    }
    AgentNodeTest::SetUp();
    if (HasFatalFailure()) return;
    base_ = dir_ + "/ctrd";
    cgroup_parent_ = "/" + topo_->prefix() + "-cri";
    for (const char* d : {"cni-bin", "cni-conf"}) fs::create_directories(base_ + "/" + d);
    // The agent writes its conflist into containerd's conf_dir once it is ready, as on a node.
    agent_ = startAgent("agent");
    ASSERT_NE(agent_, nullptr);
    fs::create_symlink(CILIUM_CNI_BINARY, base_ + "/cni-bin/cilium-cni");
    // containerd's CRI plugin always sets up the pod's lo with the standard loopback plugin.
    fs::create_symlink("/usr/lib/cni/loopback", base_ + "/cni-bin/loopback");
    startContainerd();
    if (HasFatalFailure()) return;
    auto imported =
        containerd_->ctr({"images", "import", "--all-platforms", CILIUM_PAUSE_IMAGE_TAR});
    ASSERT_TRUE(imported.ok() && imported->exit_code == 0)
        << (imported.ok() ? imported->out + imported->err : imported.error().toString());
    waitNetworkReady();
  }

  void TearDown() override {
    if (cri_) {
      // The normal path already removed them; this is for a test that failed half way.
      for (const auto& id : sandboxes_) {
        cri::StopPodSandboxRequest stop;
        stop.set_pod_sandbox_id(id);
        cri::StopPodSandboxResponse stopped;
        (void)cri_->call(&cri::RuntimeService::Stub::StopPodSandbox, stop, &stopped, 20s);
        cri::RemovePodSandboxRequest rm;
        rm.set_pod_sandbox_id(id);
        cri::RemovePodSandboxResponse removed;
        (void)cri_->call(&cri::RuntimeService::Stub::RemovePodSandbox, rm, &removed, 20s);
      }
    }
    cri_.reset();
    if (containerd_) {
      // Every namespace containerd handed to our plugin is ours, also those of sandboxes that
      // failed half way (their paths never reached the test through CRI).
      std::istringstream calls(readFile(cniLog()).valueOr(""));
      std::string line;
      while (std::getline(calls, line)) {
        auto at = line.find(" netns=/");
        if (at == std::string::npos) continue;
        auto path = line.substr(at + 7, line.find(' ', at + 7) - at - 7);
        if (path.rfind("/var/run/netns/cni-", 0) == 0 || path.rfind("/run/netns/cni-", 0) == 0)
          netns_seen_.insert(path);
      }
      for (const auto& ns : netns_seen_) containerd_->noteNetns(ns);
      containerd_.reset();  // stops it and removes what its shims and sandboxes left
    }
  }

  std::string cniLog() const { return dir_ + "/cni.log"; }

  Process* startAgent(const std::string& log) {
    return node_->startReady(
        log, {"--write-cni-conf-when-ready=" + base_ + "/cni-conf/05-cilium.conflist",
              "--cni-log-file=" + cniLog()});
  }

  // containerd runs in the node namespace: it execs the CNI plugins, which create the veth pair
  // in their own namespace, so the host side lands next to the agent, as on a real node. The
  // pods' namespaces are containerd's own (it creates and pins them under /run/netns).
  void startContainerd() {
    std::ostringstream cri;
    cri << "[plugins.\"io.containerd.grpc.v1.cri\"]\n"
        << "  sandbox_image = \"" << kPauseImage
        << "\"\n"
        // The VM's capability bounding set lacks CAP_SYS_RESOURCE: runc cannot write the
        // sandbox's negative oom_score_adj unless containerd clamps it.
        << "  restrict_oom_score_adj = true\n"
        << "  stream_server_address = \"127.0.0.1\"\n"
        << "[plugins.\"io.containerd.grpc.v1.cri\".cni]\n"
        << "  bin_dir = \"" << base_ << "/cni-bin\"\n"
        << "  conf_dir = \"" << base_ << "/cni-conf\"\n"
        << "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
        << "  snapshotter = \"overlayfs\"\n"
        << "  default_runtime_name = \"runc\"\n"
        << "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
        << "  runtime_type = \"io.containerd.runc.v2\"\n"
        << "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n"
        << "  Root = \"" << base_ << "/runc\"\n";
    auto c = testing::Containerd::start({base_, topo_->nodeNetns(), cgroup_parent_, cri.str()});
    ASSERT_TRUE(c.ok()) << c.error().toString();
    containerd_ = std::move(*c);
    cri_ = std::make_unique<CriClient>(containerd_->socket());
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      cri::VersionRequest req;
      cri::VersionResponse resp;
      if (cri_->call(&cri::RuntimeService::Stub::Version, req, &resp, 1s).ok()) {
        version_ = resp;
        return;
      }
      std::this_thread::sleep_for(50ms);  // between polls of the socket
    }
    FAIL() << "containerd did not serve CRI:\n" << containerdLog();
  }

  // NetworkReady turns true once containerd has loaded the agent's conflist.
  void waitNetworkReady() {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      cri::StatusRequest req;
      cri::StatusResponse resp;
      auto s = cri_->call(&cri::RuntimeService::Stub::Status, req, &resp, 2s);
      if (s.ok()) {
        bool ready = false;
        for (const auto& c : resp.status().conditions())
          if (c.type() == "NetworkReady") {
            ready = c.status();
            last = c.reason() + ": " + c.message();
          }
        if (ready) return;
      }
      std::this_thread::sleep_for(100ms);  // containerd reloads CNI config on inotify
    }
    FAIL() << "NetworkReady never turned true (" << last << ")\n" << containerdLog();
  }

  std::string containerdLog() { return containerd_ ? containerd_->log() : ""; }

  struct Sandbox {
    std::string id;
    std::string ip;
    std::string netns;  // the path containerd pinned the pod's namespace at
  };

  // RunPodSandbox as kubelet sends it (metadata, hostname, a cgroup parent of the test's own),
  // then PodSandboxStatus for the address and the namespace.
  Sandbox runSandbox(const std::string& name) {
    cri::RunPodSandboxResponse resp;
    auto start = std::chrono::steady_clock::now();
    auto s = runSandboxRaw(name, &resp);
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(s.ok()) << "RunPodSandbox " << name << ": " << describe(s) << "\ncni log:\n"
                        << readFile(cniLog()).valueOr("") << "\ncontainerd:\n"
                        << containerdLog();
    if (!s.ok()) return {};
    sandboxes_.push_back(resp.pod_sandbox_id());
    std::printf("RunPodSandbox %s: %.1f ms\n", name.c_str(),
                std::chrono::duration<double, std::milli>(took).count());
    return describeSandbox(resp.pod_sandbox_id(), name);
  }

  grpc::Status runSandboxRaw(const std::string& name, cri::RunPodSandboxResponse* resp) {
    cri::RunPodSandboxRequest req;
    auto* cfg = req.mutable_config();
    cfg->mutable_metadata()->set_name(name);
    cfg->mutable_metadata()->set_namespace_("default");
    cfg->mutable_metadata()->set_uid("uid-" + name);
    cfg->set_hostname(name);
    (*cfg->mutable_labels())["app"] = name;
    cfg->mutable_linux()->set_cgroup_parent(cgroup_parent_);
    return cri_->call(&cri::RuntimeService::Stub::RunPodSandbox, req, resp, 120s);
  }

  Sandbox describeSandbox(const std::string& id, const std::string& name) {
    Sandbox sb{id, "", ""};
    auto st = status(sb.id);
    EXPECT_TRUE(st.has_value());
    if (!st) return sb;
    EXPECT_EQ(st->status().state(), cri::SANDBOX_READY);
    EXPECT_EQ(st->status().metadata().name(), name);
    sb.ip = st->status().network().ip();
    auto info = nlohmann::json::parse(st->info().contains("info") ? st->info().at("info") : "{}",
                                      nullptr, false);
    if (info.is_object() && info.contains("runtimeSpec"))
      for (const auto& ns : info["runtimeSpec"]["linux"]["namespaces"])
        if (ns.value("type", "") == "network") sb.netns = ns.value("path", "");
    EXPECT_FALSE(sb.netns.empty()) << "no network namespace path in the verbose status";
    netns_seen_.insert(sb.netns);
    return sb;
  }

  std::optional<cri::PodSandboxStatusResponse> status(const std::string& id) {
    cri::PodSandboxStatusRequest req;
    req.set_pod_sandbox_id(id);
    req.set_verbose(true);
    cri::PodSandboxStatusResponse resp;
    auto s = cri_->call(&cri::RuntimeService::Stub::PodSandboxStatus, req, &resp);
    if (!s.ok()) return std::nullopt;
    return resp;
  }

  grpc::Status stopSandbox(const std::string& id) {
    cri::StopPodSandboxRequest req;
    req.set_pod_sandbox_id(id);
    cri::StopPodSandboxResponse resp;
    return cri_->call(&cri::RuntimeService::Stub::StopPodSandbox, req, &resp);
  }

  grpc::Status removeSandbox(const std::string& id) {
    cri::RemovePodSandboxRequest req;
    req.set_pod_sandbox_id(id);
    cri::RemovePodSandboxResponse resp;
    auto s = cri_->call(&cri::RuntimeService::Stub::RemovePodSandbox, req, &resp);
    if (s.ok()) std::erase(sandboxes_, id);
    return s;
  }

  std::vector<api::Endpoint> endpoints() {
    auto eps = node_->client(5s).listEndpoints();
    EXPECT_TRUE(eps.ok()) << eps.error().toString();
    return eps.ok() ? *eps : std::vector<api::Endpoint>{};
  }

  std::optional<api::Endpoint> endpointOf(const std::string& container_id) {
    for (auto& ep : endpoints())
      if (ep.status && ep.status->external_identifiers &&
          ep.status->external_identifiers->container_id == container_id)
        return ep;
    return std::nullopt;
  }

  // Host-side interfaces named like cilium-cni's veths (lxc + 12 hex digits) in the node netns.
  std::vector<std::string> lxcLinks() {
    std::vector<std::string> names;
    auto r = topo_->exec(topo_->nodeNetns(), {"ip", "-j", "link", "show"});
    if (!r.ok() || r->exit_code != 0) return names;
    auto links = nlohmann::json::parse(r->out, nullptr, false);
    if (!links.is_array()) return names;
    for (const auto& l : links) {
      std::string n = l.value("ifname", "");
      if (n.size() == 15 && n.rfind("lxc", 0) == 0) names.push_back(n);
    }
    return names;
  }

  std::string endpointStateDir() const { return node_->stateDir() + "/state/endpoints"; }

  size_t endpointStateFiles() {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(endpointStateDir(), ec)) {
      (void)e;
      ++n;
    }
    return n;
  }

  // IPAM's durable state: the addresses the agent would still hold after a restart.
  std::string ipamState() { return readFile(node_->stateDir() + "/state/ipam.json").valueOr(""); }
  bool ipamHolds(const std::string& ip) {
    auto doc = nlohmann::json::parse(ipamState(), nullptr, false);
    if (!doc.is_object() || !doc.contains("pools") || !doc["pools"].is_object()) return false;
    for (const auto& pool : doc["pools"])
      if (pool.contains("allocations") && pool["allocations"].contains(ip)) return true;
    return false;
  }

  // cilium-cni's log lines for `command` on `container`.
  std::vector<std::string> cniCalls(const std::string& command, const std::string& container) {
    std::vector<std::string> lines;
    std::istringstream in(readFile(cniLog()).valueOr(""));
    std::string line;
    std::string key = "command=" + command + " container=" + container + " ";
    while (std::getline(in, line))
      if (line.find(key) != std::string::npos) lines.push_back(line);
    return lines;
  }

  std::string base_, cgroup_parent_;
  std::unique_ptr<testing::Containerd> containerd_;
  std::unique_ptr<CriClient> cri_;
  cri::VersionResponse version_;
  std::vector<std::string> sandboxes_;  // created and not yet removed
  std::set<std::string> netns_seen_;
  Process* agent_ = nullptr;
};

TEST_F(ContainerdE2eTest, SandboxesGetAgentAddressesTalkAndStopRemoveLeaveNothing) {
  EXPECT_EQ(version_.runtime_name(), "containerd");
  EXPECT_EQ(version_.runtime_api_version(), "v1");

  Sandbox a = runSandbox("pod-a");
  Sandbox b = runSandbox("pod-b");
  ASSERT_FALSE(a.id.empty() || b.id.empty() || a.netns.empty() || b.netns.empty());

  // Each sandbox's address is the agent's (pod CIDR 10.200.0.0/24) and its endpoint is ready,
  // named after the pod kubelet asked for, with the address containerd reports.
  std::map<std::string, std::string> host_if;
  for (const Sandbox* sb : {&a, &b}) {
    EXPECT_EQ(sb->ip.rfind("10.200.0.", 0), 0u) << sb->ip;
    auto ep = endpointOf(sb->id);
    ASSERT_TRUE(ep.has_value()) << "no endpoint for sandbox " << sb->id;
    EXPECT_EQ(ep->status->state, api::EndpointState::kReady);
    ASSERT_TRUE(ep->status->networking.has_value());
    ASSERT_FALSE(ep->status->networking->addressing.empty());
    EXPECT_EQ(ep->status->networking->addressing[0].ipv4, sb->ip);
    EXPECT_EQ(ep->status->external_identifiers->k8s_namespace, "default");
    EXPECT_EQ(ep->status->external_identifiers->k8s_pod_name, sb == &a ? "pod-a" : "pod-b");
    host_if[sb->id] = ep->status->networking->interface_name;
    EXPECT_TRUE(fs::exists(endpointStateDir() + "/" + std::to_string(ep->id) + ".json"));
    EXPECT_TRUE(ipamHolds(sb->ip)) << ipamState();
    // The pod's side is where containerd said: eth0 with the address, inside its namespace.
    auto addr = topo_->exec(sb->netns, {"ip", "-o", "-4", "addr", "show", "dev", "eth0"});
    ASSERT_TRUE(addr.ok());
    EXPECT_NE(addr->out.find(sb->ip + "/32"), std::string::npos) << addr->out;
  }
  EXPECT_EQ(lxcLinks().size(), 2u);
  ASSERT_EQ(cniCalls("ADD", a.id).size(), 1u) << "one ADD per sandbox from containerd";

  {
    cri::ListPodSandboxRequest req;
    cri::ListPodSandboxResponse resp;
    ASSERT_TRUE(cri_->call(&cri::RuntimeService::Stub::ListPodSandbox, req, &resp).ok());
    EXPECT_EQ(resp.items_size(), 2);
    for (const auto& item : resp.items()) EXPECT_EQ(item.state(), cri::SANDBOX_READY);
  }

  // Pod to pod over TCP, both ways through the namespaces containerd made: a byte each way.
  for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
    auto listener = testing::listenTcp(to->netns, to->ip, kPort);
    ASSERT_TRUE(listener.ok()) << listener.error().toString();
    auto conn = testing::connectTcp(from->netns, to->ip, kPort, 3000ms);
    ASSERT_TRUE(conn.ok()) << conn.error().toString();
    auto server = testing::acceptTcp(listener->get());
    ASSERT_TRUE(server.ok()) << server.error().toString();
    ASSERT_TRUE(testing::sendAll(conn->get(), "x").ok());
    auto got = testing::recvExactly(server->get(), 1);
    ASSERT_TRUE(got.ok() && *got == "x");
    ASSERT_TRUE(testing::sendAll(server->get(), "y").ok());
    got = testing::recvExactly(conn->get(), 1);
    ASSERT_TRUE(got.ok() && *got == "y");
  }

  // Stop: containerd's first DEL (with the netns). Everything of a goes; b keeps working.
  ASSERT_TRUE(stopSandbox(a.id).ok());
  EXPECT_FALSE(endpointOf(a.id).has_value());
  auto links = lxcLinks();
  EXPECT_EQ(std::count(links.begin(), links.end(), host_if[a.id]), 0) << host_if[a.id];
  EXPECT_EQ(std::count(links.begin(), links.end(), host_if[b.id]), 1) << host_if[b.id];
  EXPECT_EQ(endpointStateFiles(), 1u);
  EXPECT_FALSE(ipamHolds(a.ip)) << ipamState();
  auto st = status(a.id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->status().state(), cri::SANDBOX_NOTREADY);

  // Remove: containerd's second DEL, with an empty CNI_NETNS, must succeed on nothing.
  ASSERT_TRUE(removeSandbox(a.id).ok()) << readFile(cniLog()).valueOr("");
  auto dels = cniCalls("DEL", a.id);
  ASSERT_EQ(dels.size(), 2u) << readFile(cniLog()).valueOr("");
  EXPECT_NE(dels[0].find("netns=" + a.netns + " "), std::string::npos) << dels[0];
  EXPECT_NE(dels[1].find("netns= "), std::string::npos) << dels[1];
  EXPECT_FALSE(fs::exists(a.netns)) << "containerd removes the pod's namespace";
  EXPECT_FALSE(status(a.id).has_value());
  EXPECT_EQ(endpoints().size(), 1u);

  // a's address is free: the agent hands exactly that one out again.
  auto ip = IpAddr::parse(a.ip);
  ASSERT_TRUE(ip.ok());
  auto api = node_->client(5s);
  auto reuse = api.ipamAllocateIp(*ip, "probe");
  EXPECT_TRUE(reuse.ok()) << reuse.error().toString();
  EXPECT_TRUE(api.ipamRelease(a.ip).ok());

  // The same pod name again (kubelet re-creating a sandbox) gets a fresh, working sandbox.
  Sandbox a2 = runSandbox("pod-a");
  ASSERT_FALSE(a2.id.empty());
  EXPECT_NE(a2.id, a.id);
  auto listener = testing::listenTcp(a2.netns, a2.ip, kPort);
  ASSERT_TRUE(listener.ok());
  EXPECT_TRUE(testing::connectTcp(b.netns, a2.ip, kPort, 3000ms).ok());

  for (const Sandbox* sb : {&a2, &b}) {
    ASSERT_TRUE(stopSandbox(sb->id).ok());
    ASSERT_TRUE(removeSandbox(sb->id).ok());
  }
  EXPECT_TRUE(endpoints().empty());
  EXPECT_TRUE(lxcLinks().empty());
  EXPECT_EQ(endpointStateFiles(), 0u);
  for (const Sandbox* sb : {&a2, &b}) {
    EXPECT_FALSE(ipamHolds(sb->ip)) << ipamState();
    EXPECT_FALSE(fs::exists(sb->netns));
  }
}

// kubelet's retry loop, for real: with the agent stopped, containerd's CNI ADD gets "try again
// later" and RunPodSandbox fails with the plugin's message, leaving no sandbox, veth or pod
// namespace; containerd's clean-up DEL is queued by cilium-cni and finished by the next agent,
// and the same RunPodSandbox then succeeds.
TEST_F(ContainerdE2eTest, AgentDownFailsRunPodSandboxCleanlyUntilItIsBack) {
  agent_->signal(SIGTERM);
  ASSERT_TRUE(agent_->wait(15s).ok());

  cri::RunPodSandboxResponse resp;
  auto failed = runSandboxRaw("pod-c", &resp);
  ASSERT_FALSE(failed.ok()) << "RunPodSandbox succeeded without an agent";
  EXPECT_NE(failed.error_message().find("cilium agent is not reachable"), std::string::npos)
      << failed.error_message();
  std::string log = readFile(cniLog()).valueOr("");
  EXPECT_NE(log.find("command=ADD"), std::string::npos) << log;
  EXPECT_NE(log.find("failing with code=11"), std::string::npos) << log;
  // containerd cleans up the failed sandbox with a DEL, which cilium-cni queues for the agent.
  EXPECT_NE(log.find("queued the delete of container="), std::string::npos) << log;
  {
    cri::ListPodSandboxRequest req;
    cri::ListPodSandboxResponse list;
    ASSERT_TRUE(cri_->call(&cri::RuntimeService::Stub::ListPodSandbox, req, &list).ok());
    for (const auto& item : list.items()) EXPECT_NE(item.state(), cri::SANDBOX_READY);
  }
  EXPECT_TRUE(lxcLinks().empty());

  agent_ = startAgent("agent2");
  ASSERT_NE(agent_, nullptr);
  EXPECT_TRUE(endpoints().empty());
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(node_->stateDir() + "/deleteQueue", ec) || ec)
      << "the new agent finishes the queued deletes before it serves";

  Sandbox c = runSandbox("pod-c");
  ASSERT_FALSE(c.id.empty());
  auto ep = endpointOf(c.id);
  ASSERT_TRUE(ep.has_value());
  EXPECT_EQ(ep->status->state, api::EndpointState::kReady);
  EXPECT_EQ(ep->status->networking->addressing[0].ipv4, c.ip);
  ASSERT_TRUE(stopSandbox(c.id).ok());
  ASSERT_TRUE(removeSandbox(c.id).ok());
  EXPECT_TRUE(endpoints().empty());
  EXPECT_TRUE(lxcLinks().empty());
  EXPECT_FALSE(ipamHolds(c.ip)) << ipamState();
}

}  // namespace
}  // namespace cilium
