// netns tier: an agent crash does not open or close the L7 policy. The real agent
// (enable-l7-proxy, manifests dir) with two pods wired by cilium-cni and an HTTP rule on the
// server's port 80; the agent is killed with SIGKILL under keep-alive traffic: cilium-proxy (its
// own process) keeps answering as the policy says (200 for the allowed request, 403 for the
// other) on open and new connections while no agent runs; the restarted agent adopts that same
// proxy (pid file, the same worker reconnecting) rather than starting a second one, and L7 flows
// reach Hubble again.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using cilium::testing::eventually;

constexpr const char* kPods = R"(apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: tiefighter, namespace: default, labels: {org: empire}}
spec: {containers: [{name: c, image: local/client}]}
---
apiVersion: v1
kind: Pod
metadata: {name: deathstar, namespace: default, labels: {app: deathstar}}
spec: {containers: [{name: c, image: local/server}]}
)";

constexpr const char* kPolicy = R"(apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: POST, path: /v1/request-landing}]
)";

// Answers every request 200 with "<METHOD> <path>".
constexpr const char* kServer = R"(
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        out = ("%s %s" % (self.command, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = any
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
S((sys.argv[1], 80), H).serve_forever()
)";

std::string request(const std::string& method, const std::string& path) {
  return method + " " + path + " HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 1\r\n\r\nx";
}

// One keep-alive HTTP/1.1 connection: a request, then its status and body (Content-Length).
class Conn {
 public:
  explicit Conn(UniqueFd fd) : fd_(std::move(fd)) {}
  // "<status> <body>", or what went wrong.
  std::string ask(const std::string& method, const std::string& path) {
    if (!testing::sendAll(fd_.get(), request(method, path)).ok()) return "send failed";
    auto deadline = std::chrono::steady_clock::now() + 5s;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return "no response head: " + buf_;
    std::string head = buf_.substr(0, end + 4);
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t len = 0;
    if (auto p = lower.find("content-length:"); p != std::string::npos)
      len = std::stoul(lower.substr(p + 15));
    while (buf_.size() < end + 4 + len)
      if (!fill(deadline)) return "short body: " + buf_;
    std::string out = head.substr(9, 3) + " " + buf_.substr(end + 4, len);
    buf_.erase(0, end + 4 + len);
    return out;
  }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::recv(fd_.get(), tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  UniqueFd fd_;
  std::string buf_;
};

class L7AgentCrashTest : public testing::AgentNodeTest {
 protected:
  L7AgentCrashTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  void SetUp() override {
    AgentNodeTest::SetUp();
    manifests_ = dir_ + "/manifests";
    std::filesystem::create_directories(manifests_);
    write("pods.yaml", kPods);
    write("policy.yaml", kPolicy);
  }

  void TearDown() override {
    // A proxy the agent left behind (a failure before the restarted agent stopped it): ours by
    // its pid file and its command line naming this test's state directory.
    if (pid_t pid = proxyPid(); pid > 0) {
      auto cmdline = readFile("/proc/" + std::to_string(pid) + "/cmdline");
      if (cmdline.ok() && cmdline->find(node_->stateDir()) != std::string::npos)
        ::kill(pid, SIGKILL);
    }
    for (const auto& ns : pod_netns_) (void)run({"ip", "netns", "del", ns});
  }

  void write(const std::string& name, const std::string& text) {
    std::string tmp = manifests_ + "/." + name + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, manifests_ + "/" + name);
  }

  std::vector<std::string> agentArgs() const {
    return {"--manifests-dir=" + manifests_, "--enable-l7-proxy=true", "--enable-hubble",
            "--hubble-socket-path=" + hubbleSock(), "--hubble-listen-address="};
  }
  std::string hubbleSock() const { return dir_ + "/hubble.sock"; }

  // The pod's netns path and address, wired by cilium-cni.
  std::pair<std::string, std::string> addPod(const std::string& pod) {
    std::string ns = topo_->prefix() + "-" + pod;
    auto r = run({"ip", "netns", "add", ns});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    pod_netns_.push_back(ns);
    // The runtime's part: loopback up (the server's own readiness check connects over it).
    r = run({"ip", "-n", ns, "link", "set", "lo", "up"});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    std::string path = "/run/netns/" + ns;
    auto add = node_->cni(CILIUM_CNI_BINARY, {"ADD", "ctr-" + pod, path, "default", pod});
    if (!add.ok() || add->exit_code != 0) {
      ADD_FAILURE() << "ADD " << pod << ": " << (add.ok() ? add->out + add->err : "");
      return {};
    }
    std::string ip = nlohmann::json::parse(add->out)["ips"][0]["address"];
    return {path, ip.substr(0, ip.find('/'))};
  }

  // The supervisor's pid the agent wrote when it started cilium-proxy.
  pid_t proxyPid() const {
    auto text = readFile(node_->stateDir() + "/state/proxy/cilium-proxy.pid");
    return text.ok() ? static_cast<pid_t>(std::atoi(text->c_str())) : 0;
  }

  // The proxy worker the agent is connected to, from its status ("connected pid N"), or 0.
  pid_t connectedWorker() const {
    auto r = node_->client(2s).call("GET", "/v1/healthz");
    if (!r.ok() || r->status != 200) return 0;
    auto at = r->body.find("cilium-proxy: connected pid ");
    if (at == std::string::npos) return 0;
    return static_cast<pid_t>(std::atoi(r->body.c_str() + at + 28));
  }

  // cilium-proxy processes (supervisors and workers) serving this test's agent socket.
  std::pair<int, int> proxyProcesses() const {
    int supervisors = 0, workers = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      // The worker runs as /proc/self/exe: its binary is known by the exe link, not argv[0].
      std::error_code ec;
      auto exe = std::filesystem::read_symlink(e.path() / "exe", ec);
      auto cmdline = readFile(e.path().string() + "/cmdline");
      if (ec || exe.filename() != "cilium-proxy" || !cmdline.ok() ||
          cmdline->find(node_->stateDir()) == std::string::npos)
        continue;
      (cmdline->find("--no-supervisor") == std::string::npos ? supervisors : workers)++;
    }
    return {supervisors, workers};
  }

  std::string hubble(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {CILIUM_HUBBLE_BINARY, "--server", "unix://" + hubbleSock()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, {}, 30s);
    return r.ok() ? r->out + r->err : r.error().toString();
  }

  std::string manifests_;
  std::vector<std::string> pod_netns_;
};

TEST_F(L7AgentCrashTest, ProxyKeepsEnforcingWhileTheAgentIsDownAndIsAdopted) {
  Process* agent = node_->startReady("agent", agentArgs());
  ASSERT_NE(agent, nullptr);
  auto [client_ns, client_ip] = addPod("tiefighter");
  auto [server_ns, server_ip] = addPod("deathstar");
  ASSERT_FALSE(client_ip.empty() || server_ip.empty());
  auto srv = topo_->spawnIn(server_ns, {"/usr/bin/python3", "-c", kServer, server_ip}, "server");
  ASSERT_TRUE(srv.ok()) << srv.error().toString();
  ASSERT_TRUE(
      eventually([&] { return testing::connectTcp(server_ns, server_ip, 80, 200ms).ok(); }, 15s))
      << readFile(topo_->tmpDir() + "/server.err").valueOr("");

  auto open = [&]() -> std::optional<Conn> {
    auto fd = testing::connectTcp(client_ns, server_ip, 80, 2s);
    if (!fd.ok()) return std::nullopt;
    return Conn(std::move(*fd));
  };
  // The policy reaches the proxy shortly after the pods exist.
  std::optional<Conn> keep;
  ASSERT_TRUE(eventually(
      [&] {
        keep = open();
        return keep && keep->ask("POST", "/v1/request-landing") == "200 POST /v1/request-landing" &&
               keep->ask("PUT", "/v1/exhaust-port") == "403 Access denied";
      },
      20s))
      << node_->log("agent");
  pid_t supervisor = proxyPid();
  ASSERT_GT(supervisor, 0);
  pid_t worker = 0;
  ASSERT_TRUE(eventually([&] { return (worker = connectedWorker()) > 0; }, 10s));
  EXPECT_EQ(proxyProcesses(), std::make_pair(1, 1));

  // kill -9: no clean stop, the proxy is left running on its own.
  agent->signal(SIGKILL);
  ASSERT_TRUE(agent->wait(10s).ok());
  EXPECT_EQ(::kill(supervisor, 0), 0) << "cilium-proxy died with the agent";
  // While no agent runs: the open connection and new ones are answered as the policy says.
  for (int i = 0; i < 5; i++) {
    EXPECT_EQ(keep->ask("POST", "/v1/request-landing"), "200 POST /v1/request-landing");
    EXPECT_EQ(keep->ask("PUT", "/v1/exhaust-port"), "403 Access denied");
    auto fresh = open();
    ASSERT_TRUE(fresh.has_value()) << "no new connection while the agent is down";
    EXPECT_EQ(fresh->ask("PUT", "/v1/exhaust-port"), "403 Access denied");
    EXPECT_EQ(fresh->ask("POST", "/v1/request-landing"), "200 POST /v1/request-landing");
  }

  // Restarted: the same proxy is adopted (its pid file, its worker reconnects), none is added.
  Process* again = node_->startReady("agent-2", agentArgs());
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(eventually([&] { return connectedWorker() == worker; }, 10s))
      << "connected to " << connectedWorker() << ", the worker was " << worker << "\n"
      << node_->log("agent-2");
  EXPECT_EQ(proxyPid(), supervisor);
  EXPECT_EQ(proxyProcesses(), std::make_pair(1, 1));
  EXPECT_NE(node_->log("agent-2").find("adopted pid=" + std::to_string(supervisor)),
            std::string::npos)
      << node_->log("agent-2");

  // Still enforcing on the connection that lived through both agents, and the records flow to
  // the new agent's Hubble again (its flow ring starts empty).
  std::string flows;
  EXPECT_TRUE(eventually(
      [&] {
        EXPECT_EQ(keep->ask("PUT", "/v1/exhaust-port"), "403 Access denied");
        EXPECT_EQ(keep->ask("POST", "/v1/request-landing"), "200 POST /v1/request-landing");
        flows = hubble({"observe", "--all", "--type", "l7"});
        return flows.find("exhaust-port") != std::string::npos &&
               flows.find("request-landing") != std::string::npos;
      },
      20s))
      << flows;
  EXPECT_NE(flows.find("DROPPED"), std::string::npos) << flows;
}

}  // namespace
}  // namespace cilium
