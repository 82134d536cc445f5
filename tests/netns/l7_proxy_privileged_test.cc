// netns tier: L7 (HTTP) policy end to end. bpf_lxc on the veths of three pods in a node namespace,
// the lo program and the proxy routing of Datapath::enableProxyRedirect(), the real cilium-proxy
// process following a proxy::Manager, and real HTTP/1.1 between the pods: the server's port 80 is
// redirected to the proxy, which forwards allowed requests untouched (keep-alive, pipelining) and
// answers the others 403 "Access denied"; while no proxy listens (not started, killed) nothing
// reaches the server, and the drops say why. Every test runs over IPv4 and over IPv6 (dual-stack
// pods, IPv6 on the node: the proxy's [::1] listeners).
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/netns.h"
#include "agent/datapath/datapath.h"
#include "agent/datapath/monitor.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/proxy/manager.h"
#include "agent/proxy/ports.h"
#include "tests/harness/endpoints.h"
#include "tests/harness/eventually.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using datapath::PolicyEntry;
using namespace std::chrono_literals;

constexpr uint8_t kTcp = 6;
constexpr uint32_t kClientId = 1001, kServerId = 1002, kOtherId = 1003;
constexpr uint16_t kServerEp = 2;

// Answers every method with 200 and what it received: method, path, X-Test header and body,
// and " upgrade=<value>" after it when an Upgrade header arrived (it never upgrades).
constexpr const char* kEchoServer = R"(
import http.server, socket, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        out = ("%s %s x-test=%s body=" % (self.command, self.path,
               self.headers.get("X-Test", ""))).encode() + body
        if self.headers.get("Upgrade"):
            out += (" upgrade=%s" % self.headers.get("Upgrade")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = any
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    def server_bind(self):  # no getfqdn(): no resolver in the pod, a 10 s timeout
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
if ":" in sys.argv[1]: S.address_family = socket.AF_INET6
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
)";

PolicyEntry allow(uint32_t identity, uint8_t dir, uint8_t proto = 0, uint16_t port = 0,
                  uint16_t proxy_port = 0) {
  PolicyEntry e{datapath::policyKey(identity, dir, proto, port, port ? 16 : 0), {}};
  e.value.proxy_port = htons(proxy_port);
  return e;
}

struct Response {
  int status = 0;
  std::string head, body;
};

// An HTTP/1.1 client connection: requests written as given, responses read by Content-Length.
class HttpConn {
 public:
  explicit HttpConn(UniqueFd fd) : fd_(std::move(fd)) {}
  Status send(const std::string& bytes) { return testing::sendAll(fd_.get(), bytes); }

  Result<Response> read(std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      CILIUM_RETURN_IF_ERROR(fill(deadline));
    Response r;
    r.head = buf_.substr(0, end + 4);
    if (r.head.size() < 12) return makeError(ErrorCode::kInvalidArgument, "short: {}", r.head);
    r.status = std::stoi(r.head.substr(9, 3));
    size_t len = 0;
    std::string lower = r.head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto p = lower.find("content-length:"); p != std::string::npos)
      len = std::stoul(lower.substr(p + 15));
    while (buf_.size() < end + 4 + len) CILIUM_RETURN_IF_ERROR(fill(deadline));
    r.body = buf_.substr(end + 4, len);
    buf_.erase(0, end + 4 + len);
    return r;
  }

  // Whether the peer closed (or reset) the connection within `timeout`, nothing else arriving.
  bool closedWithin(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto st = fill(deadline);
    return !st.ok() && st.error().code() != ErrorCode::kDeadlineExceeded;
  }

  int fd() const { return fd_.get(); }

 private:
  Status fill(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return makeError(ErrorCode::kDeadlineExceeded, "no response in time");
    pollfd p{fd_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n == 0) return makeError(ErrorCode::kDeadlineExceeded, "no response in time");
    char tmp[16384];
    ssize_t got = ::recv(fd_.get(), tmp, sizeof(tmp), 0);
    if (got < 0) return makeError(ErrorCode::kUnavailable, "recv: {}", std::strerror(errno));
    if (got == 0) return makeError(ErrorCode::kUnavailable, "connection closed");
    buf_.append(tmp, static_cast<size_t>(got));
    return okStatus();
  }

  UniqueFd fd_;
  std::string buf_;
};

std::string request(const std::string& method, const std::string& path,
                    const std::string& body = "") {
  return method + " " + path + " HTTP/1.1\r\nHost: deathstar\r\nX-Test: kept\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

class L7ProxyNetnsTest : public ::testing::TestWithParam<testing::Family> {
 protected:
  void SetUp() override {
    v6_ = GetParam() == testing::Family::kV6;
    auto topo = testing::Topology::create(203);
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    // IPv6: dual-stack pods, and IPv6 on the node (::1 for the proxy, routes to the pods).
    if (v6_) {
      ASSERT_TRUE(topo_->enableNodeIpv6().ok());
    }
    for (auto [pod, name, ip4] : {std::tuple{&client_, "client", "10.203.0.11"},
                                  std::tuple{&server_, "server", "10.203.0.12"},
                                  std::tuple{&other_, "other", "10.203.0.13"}}) {
      auto p = topo_->addPod(name, ip4, v6_ ? testing::v6Twin(ip4) : "");
      ASSERT_TRUE(p.ok()) << p.error().toString();
      *pod = *p;
    }
    auto pin = topo_->pinDir();
    ASSERT_TRUE(pin.ok());
    pin_dir_ = *pin;
    auto dp = datapath::Datapath::load({pin_dir_});
    ASSERT_TRUE(dp.ok()) << dp.error().toString();
    dp_ = std::move(*dp);
    auto maps = dp_->maps();
    ASSERT_TRUE(testing::programEndpoint(maps, client_, 1, kClientId).ok());
    ASSERT_TRUE(testing::programEndpoint(maps, server_, kServerEp, kServerId).ok());
    ASSERT_TRUE(testing::programEndpoint(maps, other_, 3, kOtherId).ok());
    ASSERT_TRUE(testing::programNode(maps, topo_->routerIp()).ok());
    auto reader = dp_->openEventReader([this](const cilium_event& ev) { events_.push_back(ev); });
    ASSERT_TRUE(reader.ok()) << reader.error().toString();
    reader_ = std::move(*reader);

    auto ports = runInNetnsValue<proxy::ProxyPortSet>(
        topo_->nodeNetns(), [&]() -> Result<proxy::ProxyPortSet> {
          for (const auto* p : {&client_, &server_, &other_})
            CILIUM_RETURN_IF_ERROR(dp_->attachEndpoint(p->host_ifindex));
          CILIUM_RETURN_IF_ERROR(dp_->enableProxyRedirect());
          return proxy::loadOrAllocatePorts(topo_->tmpDir(), 10000, 10999);
        });
    ASSERT_TRUE(ports.ok()) << ports.error().toString();
    ports_ = *ports;

    // The clients may send anything; the server takes port 80 from both, through the proxy.
    setPolicy(1, {allow(0, POLICY_EGRESS)});
    setPolicy(3, {allow(0, POLICY_EGRESS)});
    setPolicy(kServerEp, {allow(kClientId, POLICY_INGRESS, kTcp, 80, ports_.http_ingress),
                          allow(kOtherId, POLICY_INGRESS, kTcp, 80, ports_.http_ingress)});

    proxy::ManagerOptions mo;
    mo.socket_path = topo_->tmpDir() + "/proxy.sock";
    mo.ports = ports_;
    auto m = proxy::Manager::start(mo);
    ASSERT_TRUE(m.ok()) << m.error().toString();
    manager_ = std::move(*m);
    // Only the client, only GET /public... and POST /v1/request-landing (rules.http).
    policy::L7PortRule rule;
    rule.dir = policy::Direction::kIngress;
    rule.proto = kTcp;
    rule.port = 80;
    rule.bits = 16;
    rule.identities = {kClientId};
    rule.http = {{"GET", "/public.*", "", {}, {}}, {"POST", "/v1/request-landing", "", {}, {}}};
    policy::L7Policy l7;
    l7.rules.push_back(rule);
    l7Changed(kServerEp, kServerId, server_, l7);

    auto srv = topo_->spawnIn(
        server_.netns, {"/usr/bin/python3", "-c", kEchoServer, ip(server_), "80"}, "echo-server");
    ASSERT_TRUE(srv.ok()) << srv.error().toString();
    ASSERT_TRUE(testing::eventually(
        [&] { return testing::connectTcp(server_.netns, ip(server_), 80, 200ms).ok(); }, 15s))
        << "the echo server did not start";
  }

  // The pod's address in the test's family.
  std::string ip(const testing::Pod& p) const { return v6_ ? p.ip6 : p.ip; }
  // "host:port" of the server in URLs and gRPC targets.
  std::string hostPort(uint16_t port) const {
    return v6_ ? fmt::format("[{}]:{}", ip(server_), port)
               : fmt::format("{}:{}", ip(server_), port);
  }
  // The endpoint's L7 policy, for both its addresses.
  void l7Changed(uint16_t id, uint32_t identity, const testing::Pod& pod,
                 const policy::L7Policy& l7) {
    auto ip4 = IpAddr::parse(pod.ip);
    ASSERT_TRUE(ip4.ok());
    std::optional<IpAddr> ip6;
    if (!pod.ip6.empty()) ip6 = *IpAddr::parse(pod.ip6);
    manager_->l7PoliciesChanged({{id, identity, *ip4, l7, ip6}});
  }

  void TearDown() override {
    if (!HasFailure() || !topo_) return;
    if (proxy_ != nullptr && !proxy_->running()) {
      auto code = proxy_->wait(0ms);
      std::cerr << "cilium-proxy exited: " << (code.ok() ? *code : -1) << "\n";
    }
    for (int i = 1; i <= proxy_runs_; i++) {
      for (const char* ext : {".out", ".err"}) {
        auto log = readFile(topo_->tmpDir() + "/cilium-proxy-" + std::to_string(i) + ext);
        if (log.ok() && !log->empty())
          std::cerr << "--- cilium-proxy run " << i << ext << ":\n" << *log;
      }
    }
  }

  void setPolicy(uint16_t id, const std::vector<PolicyEntry>& entries) {
    auto maps = dp_->maps();
    auto s = maps.policy->replace(id, entries);
    ASSERT_TRUE(s.ok()) << s.error().toString();
    ASSERT_TRUE(datapath::bumpPolicyRevision(*maps.runtime_config).ok());
  }

  // Starts cilium-proxy in the node namespace and waits until it has acknowledged the policy.
  void startProxy(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {CILIUM_PROXY_BINARY, "--no-supervisor",
                                     "--agent-socket",    topo_->tmpDir() + "/proxy.sock",
                                     "--state-dir",       topo_->tmpDir() + "/proxy-state",
                                     "--bpf-pin-dir",     pin_dir_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p =
        topo_->spawnIn(topo_->nodeNetns(), argv, "cilium-proxy-" + std::to_string(++proxy_runs_));
    ASSERT_TRUE(p.ok()) << p.error().toString();
    proxy_ = *p;
    ASSERT_TRUE(testing::eventually([&] {
      auto s = manager_->status();
      return s.connected && s.acked >= s.version && s.pid == proxy_->pid();
    })) << "the proxy did not acknowledge the policy";
  }

  Result<HttpConn> connect(const testing::Pod& from, std::chrono::milliseconds timeout = 5s) {
    CILIUM_ASSIGN_OR_RETURN(auto fd, testing::connectTcp(from.netns, ip(server_), 80, timeout));
    return HttpConn(std::move(fd));
  }

  ::testing::AssertionResult waitForDrop(uint8_t reason, const std::string& saddr,
                                         std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t checked = 0;
    auto want = IpAddr::parse(saddr);
    if (!want.ok()) return ::testing::AssertionFailure() << want.error().toString();
    auto source = [](const cilium_event& ev) {
      return ev.tuple.family == ENDPOINT_KEY_IPV6
                 ? IpAddr::fromBytes(IpFamily::kV6, ev.tuple.saddr.ip6)
                 : IpAddr::fromNetworkOrder(ev.tuple.saddr.ip4);
    };
    while (true) {
      for (; checked < events_.size(); checked++) {
        const auto& ev = events_[checked];
        if (ev.type == EVENT_DROP && ev.subtype == reason && source(ev) == *want &&
            ev.tuple.dport == htons(80))
          return ::testing::AssertionSuccess();
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      auto n = reader_->poll(50ms);
      if (!n.ok()) return ::testing::AssertionFailure() << n.error().toString();
    }
    std::string seen;
    for (const auto& ev : events_) seen += "\n  " + datapath::formatEvent(ev);
    return ::testing::AssertionFailure()
           << "no drop with reason " << int(reason) << "; saw:" << seen;
  }

  bool v6_ = false;
  std::unique_ptr<testing::Topology> topo_;
  testing::Pod client_, server_, other_;
  std::string pin_dir_;
  std::unique_ptr<datapath::Datapath> dp_;
  std::unique_ptr<datapath::EventReader> reader_;
  std::vector<cilium_event> events_;
  proxy::ProxyPortSet ports_;
  std::unique_ptr<proxy::Manager> manager_;
  Process* proxy_ = nullptr;
  int proxy_runs_ = 0;
};

CILIUM_INSTANTIATE_FAMILIES(L7ProxyNetnsTest);

TEST_P(L7ProxyNetnsTest, AllowedRequestsForwardedUntouchedOthersGet403OnKeepAlive) {
  startProxy();
  auto c = connect(client_);
  ASSERT_TRUE(c.ok()) << c.error().toString();

  ASSERT_TRUE(c->send(request("POST", "/v1/request-landing", "ship=tiefighter")).ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 200) << r->head;
  EXPECT_EQ(r->body, "POST /v1/request-landing x-test=kept body=ship=tiefighter");

  ASSERT_TRUE(c->send(request("PUT", "/v1/exhaust-port", "boom")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 403) << r->head;
  EXPECT_NE(r->head.find("HTTP/1.1 403 Forbidden\r\n"), std::string::npos) << r->head;
  EXPECT_EQ(r->body, "Access denied");

  // Method and path both count: GET on the landing path, POST elsewhere.
  ASSERT_TRUE(c->send(request("GET", "/v1/request-landing")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 403);
  ASSERT_TRUE(c->send(request("POST", "/v1/request-landing/../exhaust-port", "x")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 403) << "the path regex matches the whole path";

  // The same connection still carries allowed requests after denials (keep-alive).
  ASSERT_TRUE(c->send(request("GET", "/public/map")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /public/map x-test=kept body=");
}

// An HTTP/1.1 request asking to upgrade to h2c is forwarded without the upgrade (Upgrade,
// HTTP2-Settings and Connection dropped, as Envoy does): HTTP/2 on that connection would escape
// the HTTP/1 rules. The client gets the plain answer, and the connection stays HTTP/1.1 under
// the rules: the next request is decided on its own.
TEST_P(L7ProxyNetnsTest, H2cUpgradeIsNotPassedOn) {
  startProxy();
  auto c = connect(client_);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  ASSERT_TRUE(c->send("GET /public/h2c HTTP/1.1\r\nHost: deathstar\r\nX-Test: kept\r\n"
                      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 0\r\n\r\n")
                  .ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 200) << r->head;
  EXPECT_EQ(r->body, "GET /public/h2c x-test=kept body=") << "the server saw no Upgrade";

  ASSERT_TRUE(c->send(request("PUT", "/v1/exhaust-port", "boom")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 403) << "still HTTP/1.1 under the rules: " << r->head;
  ASSERT_TRUE(c->send(request("GET", "/public/map")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 200);
}

// The proxy's access records reach Hubble as L7 flows (the agent wires the manager's record
// handler to its flow pipeline the same way): the allowed request and its response, and the
// denied request DROPPED with its 403.
TEST_P(L7ProxyNetnsTest, AccessRecordsBecomeHubbleL7Flows) {
  hubble::PipelineOptions po;
  po.node_name = "node-1";
  hubble::StaticResolver res;
  res.addEndpoint({1, kClientId, "client", "default", {"k8s:app=client"}},
                  {*IpAddr::parse(ip(client_))});
  res.addEndpoint({kServerEp, kServerId, "deathstar", "default", {"k8s:app=deathstar"}},
                  {*IpAddr::parse(ip(server_))});
  hubble::FlowPipeline pipeline(po, &res, &res);
  ASSERT_TRUE(pipeline.start().ok());
  manager_->setRecordHandler([&](const proxy::AccessRecord& r) { pipeline.onAccessRecord(r); });
  startProxy();
  auto c = connect(client_);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  ASSERT_TRUE(c->send(request("POST", "/v1/request-landing", "ship=tiefighter")).ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok() && r->status == 200);
  ASSERT_TRUE(c->send(request("PUT", "/v1/exhaust-port", "boom")).ok());
  r = c->read();
  ASSERT_TRUE(r.ok() && r->status == 403);

  std::vector<std::string> seen;
  bool all = testing::eventually([&] {
    pipeline.flush(1s);
    seen.clear();
    auto& ring = pipeline.ring();
    for (uint64_t i = ring.oldest(); i < ring.next(); i++) {
      auto e = ring.read(i).event;
      if (!e || !e->has_flow() || e->flow().type() != flow::L7) continue;
      const auto& f = e->flow();
      seen.push_back(fmt::format("{} {} {}->{} {} {}", flow::Verdict_Name(f.verdict()),
                                 flow::L7FlowType_Name(f.l7().type()), f.source().pod_name(),
                                 f.destination().pod_name(), f.l7().http().code(), f.summary()));
    }
    return seen.size() >= 3;
  });
  manager_->setRecordHandler(nullptr);
  std::string text;
  for (const auto& l : seen) text += l + "\n";
  ASSERT_TRUE(all) << text;
  auto has = [&](const std::string& want) { return text.find(want) != std::string::npos; };
  EXPECT_TRUE(
      has("FORWARDED REQUEST client->deathstar 0 HTTP/1.1 POST "
          "http://deathstar/v1/request-landing"))
      << text;
  EXPECT_TRUE(has("FORWARDED RESPONSE deathstar->client 200 HTTP/1.1 200 ")) << text;
  EXPECT_TRUE(
      has("DROPPED REQUEST client->deathstar 403 HTTP/1.1 PUT "
          "http://deathstar/v1/exhaust-port"))
      << text;
}

TEST_P(L7ProxyNetnsTest, PipelinedRequestsAreAnsweredInOrder) {
  startProxy();
  auto c = connect(client_);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  ASSERT_TRUE(c->send(request("GET", "/public/1") + request("PUT", "/v1/exhaust-port", "x") +
                      request("POST", "/v1/request-landing", "2") + request("DELETE", "/public/3") +
                      request("GET", "/public/4"))
                  .ok());
  std::vector<std::pair<int, std::string>> want = {
      {200, "GET /public/1 x-test=kept body="},
      {403, "Access denied"},
      {200, "POST /v1/request-landing x-test=kept body=2"},
      {403, "Access denied"},
      {200, "GET /public/4 x-test=kept body="}};
  for (const auto& [status, body] : want) {
    auto r = c->read();
    ASSERT_TRUE(r.ok()) << r.error().toString();
    EXPECT_EQ(r->status, status) << r->head;
    EXPECT_EQ(r->body, body);
  }
}

TEST_P(L7ProxyNetnsTest, APeerNoRuleNamesGets403ForEverything) {
  startProxy();
  auto c = connect(other_);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  for (const auto& req : {request("GET", "/public/map"), request("POST", "/v1/request-landing")}) {
    ASSERT_TRUE(c->send(req).ok());
    auto r = c->read();
    ASSERT_TRUE(r.ok()) << r.error().toString();
    EXPECT_EQ(r->status, 403) << "the rules name only the client's identity";
  }
}

TEST_P(L7ProxyNetnsTest, NothingGetsThroughWhileNoProxyListens) {
  // Not started yet: the SYN is dropped, with the reason, never allowed at L4.
  auto early = connect(client_, 1500ms);
  EXPECT_FALSE(early.ok()) << "connected past a proxy that is not running";
  EXPECT_TRUE(waitForDrop(DROP_PROXY_LOOKUP_FAILED, ip(client_)));

  startProxy();
  auto c = connect(client_);
  ASSERT_TRUE(c.ok()) << c.error().toString();
  ASSERT_TRUE(c->send(request("GET", "/public/before")).ok());
  auto r = c->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  ASSERT_EQ(r->status, 200);

  // Killed: the open connection carries nothing more to the server, new ones are dropped.
  proxy_->signal(SIGKILL);
  ASSERT_TRUE(proxy_->wait(5s).ok());
  events_.clear();
  (void)c->send(request("GET", "/public/after-kill"));
  auto after = c->read(1500ms);
  EXPECT_FALSE(after.ok()) << "a response came through a dead proxy: " << after->head;
  auto late = connect(client_, 1500ms);
  EXPECT_FALSE(late.ok()) << "connected while the proxy is dead";
  EXPECT_TRUE(waitForDrop(DROP_PROXY_LOOKUP_FAILED, ip(client_)));
  auto other = connect(other_, 1500ms);
  EXPECT_FALSE(other.ok());

  // Restarted (with the policy it persisted): enforcing again.
  startProxy();
  auto again = connect(client_);
  ASSERT_TRUE(again.ok()) << again.error().toString();
  ASSERT_TRUE(
      again->send(request("PUT", "/v1/exhaust-port", "x") + request("GET", "/public/x")).ok());
  r = again->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 403);
  r = again->read();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 200);
}

// An egress rule: the client may only GET /public... from the server's port 8080; its own
// proxy (cilium-http-egress) decides, and the server's ingress policy still applies to what the
// proxy forwards (judged with the client's identity from the proxy's mark).
TEST_P(L7ProxyNetnsTest, EgressRuleOfTheSender) {
  auto srv = topo_->spawnIn(
      server_.netns, {"/usr/bin/python3", "-c", kEchoServer, ip(server_), "8080"}, "echo-8080");
  ASSERT_TRUE(srv.ok()) << srv.error().toString();
  ASSERT_TRUE(testing::eventually(
      [&] { return testing::connectTcp(server_.netns, ip(server_), 8080, 200ms).ok(); }, 15s));
  setPolicy(1, {allow(kServerId, POLICY_EGRESS, kTcp, 8080, ports_.http_egress)});
  setPolicy(kServerEp, {allow(kClientId, POLICY_INGRESS, kTcp, 8080)});
  policy::L7PortRule rule;
  rule.dir = policy::Direction::kEgress;
  rule.proto = kTcp;
  rule.port = 8080;
  rule.bits = 16;
  rule.identities = {kServerId};
  rule.http = {{"GET", "/public.*", "", {}, {}}};
  policy::L7Policy l7;
  l7.rules.push_back(rule);
  l7Changed(1, kClientId, client_, l7);
  startProxy();

  auto fd = testing::connectTcp(client_.netns, ip(server_), 8080);
  ASSERT_TRUE(fd.ok()) << fd.error().toString();
  HttpConn c(std::move(*fd));
  ASSERT_TRUE(c.send(request("GET", "/public/egress") +
                     request("POST", "/v1/request-landing", "x") + request("GET", "/public/again"))
                  .ok());
  for (auto [status, body] :
       {std::pair{200, "GET /public/egress x-test=kept body="}, std::pair{403, "Access denied"},
        std::pair{200, "GET /public/again x-test=kept body="}}) {
    auto r = c.read();
    ASSERT_TRUE(r.ok()) << r.error().toString();
    EXPECT_EQ(r->status, status) << r->head;
    EXPECT_EQ(r->body, body);
  }

  // The server's ingress policy is not the proxy's to waive: without the client's L4 allow there,
  // what the egress proxy forwards is dropped on the way in (no answer: 503 after the timeout,
  // or nothing).
  setPolicy(kServerEp, {});
  auto fd2 = testing::connectTcp(client_.netns, ip(server_), 8080);
  ASSERT_TRUE(fd2.ok()) << fd2.error().toString();
  HttpConn c2(std::move(*fd2));
  ASSERT_TRUE(c2.send(request("GET", "/public/denied-at-ingress")).ok());
  auto r = c2.read(8s);
  EXPECT_TRUE(!r.ok() || r->status != 200) << "forwarded past the server's ingress policy";
}

// HTTP/2 (cleartext, prior knowledge, as gRPC clients connect): the proxy tells it from HTTP/1
// by the client preface and decides each stream; nghttpd serves, nghttp asks.
TEST_P(L7ProxyNetnsTest, Http2StreamsAreDecidedOneByOne) {
  if (::access("/usr/sbin/nghttpd", X_OK) != 0 || ::access("/usr/bin/nghttp", X_OK) != 0)
    GTEST_SKIP() << "nghttp2-server and nghttp2-client are not installed (install-deps.sh)";
  std::string docs = topo_->tmpDir() + "/htdocs";
  ASSERT_TRUE(makeDirs(docs + "/public", 0755).ok());
  ASSERT_TRUE(writeFileAtomic(docs + "/public/map.txt", "the map").ok());
  ASSERT_TRUE(writeFileAtomic(docs + "/secret.txt", "the plans").ok());
  auto srv = topo_->spawnIn(
      server_.netns, {"/usr/sbin/nghttpd", "--no-tls", "-a", ip(server_), "-d", docs, "8081"},
      "nghttpd");
  ASSERT_TRUE(srv.ok()) << srv.error().toString();
  ASSERT_TRUE(testing::eventually(
      [&] { return testing::connectTcp(server_.netns, ip(server_), 8081, 200ms).ok(); }, 15s));
  setPolicy(kServerEp, {allow(kClientId, POLICY_INGRESS, kTcp, 8081, ports_.http_ingress)});
  policy::L7PortRule rule;
  rule.dir = policy::Direction::kIngress;
  rule.proto = kTcp;
  rule.port = 8081;
  rule.bits = 16;
  rule.identities = {kClientId};
  rule.http = {{"GET", "/public/.*", "", {}, {}}};
  policy::L7Policy l7;
  l7.rules.push_back(rule);
  l7Changed(kServerEp, kServerId, server_, l7);
  startProxy();

  std::string base = "http://" + hostPort(8081);
  // Three concurrent streams on one connection (curl 7.88 cannot reuse an HTTP/2 connection,
  // with or without the proxy: nghttp asks).
  auto out = topo_->exec(client_.netns,
                         {"/usr/bin/nghttp", "-v", "-n", "-t", "5", base + "/public/map.txt",
                          base + "/secret.txt", base + "/public/map.txt?x=1"});
  ASSERT_TRUE(out.ok()) << out.error().toString();
  // The status of the stream nghttp opened for `path` (its HEADERS frame names the stream id).
  auto status = [&](const std::string& path) -> std::string {
    const std::string& v = out->out;
    size_t at = v.find(":path: " + path + "\n");
    if (at == std::string::npos) return "no stream for " + path;
    size_t frame = v.rfind("send HEADERS frame <", at);
    size_t id_at = frame == std::string::npos ? frame : v.find(", stream_id=", frame);
    if (id_at == std::string::npos || id_at > at) return "no stream id";
    id_at += 2;
    std::string id = v.substr(id_at + 10, v.find('>', id_at) - id_at - 10);
    size_t st = v.find("recv (stream_id=" + id + ") :status: ");
    if (st == std::string::npos) return "no status on stream " + id;
    return v.substr(st + 27 + id.size(), 3);
  };
  EXPECT_EQ(status("/public/map.txt"), "200") << out->out << out->err;
  EXPECT_EQ(status("/secret.txt"), "403") << out->out;
  EXPECT_EQ(status("/public/map.txt?x=1"), "200") << out->out;
  // The 403's body.
  auto denied = topo_->exec(client_.netns, {"/usr/bin/nghttp", "-t", "5", base + "/secret.txt"});
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->out, "Access denied") << denied->err;
  auto allowed =
      topo_->exec(client_.netns, {"/usr/bin/nghttp", "-t", "5", base + "/public/map.txt"});
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->out, "the map") << allowed->err;
}

// gRPC (h2c, a real grpc++ server and client): a rule allowing only POST /pkg.Echo/Allowed.
// The allowed call returns with its trailers and status, the other method gets grpc-status 7
// (PERMISSION_DENIED) from the proxy though the server would answer it, and an 8 MiB message
// passes both ways intact (HTTP/2 flow control across the proxy's two connections).
TEST_P(L7ProxyNetnsTest, GrpcMethodsAreDecidedWithStatusAndTrailers) {
  std::string addr = hostPort(9090);
  auto srv = topo_->spawnIn(server_.netns, {GRPC_PEER_BINARY, "serve", addr}, "grpc-server");
  ASSERT_TRUE(srv.ok()) << srv.error().toString();
  ASSERT_TRUE(testing::eventually(
      [&] { return testing::connectTcp(server_.netns, ip(server_), 9090, 200ms).ok(); }, 15s));
  setPolicy(kServerEp, {allow(kClientId, POLICY_INGRESS, kTcp, 9090, ports_.http_ingress)});
  policy::L7PortRule rule;
  rule.dir = policy::Direction::kIngress;
  rule.proto = kTcp;
  rule.port = 9090;
  rule.bits = 16;
  rule.identities = {kClientId};
  rule.http = {{"POST", "/pkg.Echo/Allowed", "", {}, {}}};
  policy::L7Policy l7;
  l7.rules.push_back(rule);
  l7Changed(kServerEp, kServerId, server_, l7);
  startProxy();

  auto call = [&](const std::string& method, size_t bytes) -> std::string {
    auto out = topo_->exec(client_.netns,
                           {GRPC_PEER_BINARY, "call", addr, method, std::to_string(bytes)}, 60s);
    if (!out.ok()) return "exec: " + out.error().message();
    std::string text = out->out;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return out->exit_code == 0 ? text : "exit " + std::to_string(out->exit_code) + ": " + out->err;
  };
  EXPECT_EQ(call("Allowed", 1000), "status=0 size=1000 intact=1 trailer=1000 message=");
  std::string denied = call("Denied", 10);
  EXPECT_EQ(denied.rfind("status=7 size=0 intact=0 trailer=- message=", 0), 0u) << denied;
  constexpr size_t kLarge = 8u << 20;
  EXPECT_EQ(call("Allowed", kLarge),
            fmt::format("status=0 size={} intact=1 trailer={} message=", kLarge, kLarge));
  // The connection the denial came on was not the proxy's last word: allowed again after it.
  EXPECT_EQ(call("Allowed", 1), "status=0 size=1 intact=1 trailer=1 message=");
}

// gRPC bidirectional streams: a rule allowing POST /pkg.Echo/Chat lets a stream of 200 messages
// through, each echoed before the next is sent (the stream stays open across the proxy, DATA
// frames both ways), and the stream of a method no rule names ends with grpc-status 7 before the
// server sees a message.
TEST_P(L7ProxyNetnsTest, GrpcStreamsAreDecidedWhenTheyOpen) {
  std::string addr = hostPort(9091);
  auto srv = topo_->spawnIn(server_.netns, {GRPC_PEER_BINARY, "serve", addr}, "grpc-server");
  ASSERT_TRUE(srv.ok()) << srv.error().toString();
  ASSERT_TRUE(testing::eventually(
      [&] { return testing::connectTcp(server_.netns, ip(server_), 9091, 200ms).ok(); }, 15s));
  setPolicy(kServerEp, {allow(kClientId, POLICY_INGRESS, kTcp, 9091, ports_.http_ingress)});
  policy::L7PortRule rule;
  rule.dir = policy::Direction::kIngress;
  rule.proto = kTcp;
  rule.port = 9091;
  rule.bits = 16;
  rule.identities = {kClientId};
  rule.http = {{"POST", "/pkg.Echo/Chat", "", {}, {}}};
  policy::L7Policy l7;
  l7.rules.push_back(rule);
  l7Changed(kServerEp, kServerId, server_, l7);
  startProxy();

  auto stream = [&](const std::string& method, size_t count, size_t bytes) -> std::string {
    auto out = topo_->exec(
        client_.netns,
        {GRPC_PEER_BINARY, "stream", addr, method, std::to_string(count), std::to_string(bytes)},
        60s);
    if (!out.ok()) return "exec: " + out.error().message();
    std::string text = out->out;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return out->exit_code == 0 ? text : "exit " + std::to_string(out->exit_code) + ": " + out->err;
  };
  EXPECT_EQ(stream("Chat", 200, 4096), "status=0 echoed=200 intact=1 message=");
  std::string denied = stream("ChatDenied", 5, 16);
  EXPECT_EQ(denied.rfind("status=7 echoed=0 intact=0 message=", 0), 0u) << denied;
  EXPECT_EQ(stream("Chat", 3, 1), "status=0 echoed=3 intact=1 message=")
      << "allowed again after a denied stream";
}

// Sessions end when their connections do: with room for 8 connections at once, 60 connections
// one after another (each with an allowed and a denied request, then closed by the client) are
// all served. A session that outlived its connection (the old upstream-retry reference cycle)
// kept its place, and the proxy refused every connection after the 8th. Two event loops: the
// connections alternate between them, and their count is shared.
TEST_P(L7ProxyNetnsTest, ClosedConnectionsFreeTheirPlace) {
  startProxy({"--max-connections", "8", "--threads", "2"});
  for (int i = 0; i < 60; i++) {
    auto c = connect(client_);
    ASSERT_TRUE(c.ok()) << "connection " << i << ": " << c.error().toString();
    ASSERT_TRUE(c->send(request("GET", "/public/" + std::to_string(i)) +
                        request("PUT", "/v1/exhaust-port", "x"))
                    .ok());
    auto r = c->read();
    ASSERT_TRUE(r.ok()) << "connection " << i << ": " << r.error().toString();
    EXPECT_EQ(r->status, 200);
    r = c->read();
    ASSERT_TRUE(r.ok()) << "connection " << i << ": " << r.error().toString();
    EXPECT_EQ(r->status, 403);
    // Closed by the client; the next connection may come before the proxy saw the close, so
    // wait for its end of the connection (the server side closes after the client's FIN).
    ::shutdown(c->fd(), SHUT_WR);
    EXPECT_TRUE(c->closedWithin(5s)) << "connection " << i << " not closed by the proxy";
  }
}

}  // namespace
}  // namespace cilium
