// Unit tier: the local node's pod workloads (HTTP server and client over loopback) and its
// manifests reader (cilium-local-manifests) on the Star Wars demo manifests.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/fd.h"
#include "agent/common/subprocess.h"
#include "deploy/local/workloads/http.h"
#include "tests/harness/temp_dir.h"

namespace cilium::local {
namespace {

using namespace std::chrono_literals;

TEST(Route, ParsesMethodPathStatusAndBody) {
  auto r = parseRoute("PUT /v1/exhaust-port=500:Panic: deathstar exploded");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->method, "PUT");
  EXPECT_EQ(r->path, "/v1/exhaust-port");
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body, "Panic: deathstar exploded");
  auto empty = parseRoute("GET /=204");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->body, "");
}

TEST(Route, RejectsMalformedRoutesNamingThePart) {
  for (const char* bad : {"", "GET", "GET /x", "get /x=200:a", "GET x=200:a", "GET /x=abc:a",
                          "GET /x=99:a", "GET /x=600:a", "GET /x=:a"}) {
    auto r = parseRoute(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(parseRoute("GET /x=abc:a").error().message().find("status 'abc'"), std::string::npos);
}

TEST(Url, ParsesHostPortAndPath) {
  auto u = parseUrl("http://10.200.0.5:8080/v1/request-landing");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "10.200.0.5");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->path, "/v1/request-landing");
  auto d = parseUrl("http://deathstar");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 80);
  EXPECT_EQ(d->path, "/");
  EXPECT_FALSE(parseUrl("https://x/").ok());
  EXPECT_FALSE(parseUrl("http://x:0/").ok());
  EXPECT_FALSE(parseUrl("http://x:99999/").ok());
  EXPECT_FALSE(parseUrl("http:///path").ok());
}

TEST(Url, TakesIpv6AddressesInBrackets) {
  auto u = parseUrl("http://[fd00:10:200::5]:8080/v1/request-landing");
  ASSERT_TRUE(u.ok()) << u.error().toString();
  EXPECT_EQ(u->host, "fd00:10:200::5");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->path, "/v1/request-landing");
  auto bare = parseUrl("http://[fd00:96::100]");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->host, "fd00:96::100");
  EXPECT_EQ(bare->port, 80);
  EXPECT_FALSE(parseUrl("http://fd00::5/").ok());      // ambiguous without brackets
  EXPECT_FALSE(parseUrl("http://[fd00::5/").ok());     // no closing bracket
  EXPECT_FALSE(parseUrl("http://[fd00::5]x/").ok());   // junk after the bracket
  EXPECT_FALSE(parseUrl("http://[fd00::5]:0/").ok());
}

TEST(ListenAddress, Parses) {
  auto a = parseListenAddress(":80");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 80);
  EXPECT_FALSE(parseListenAddress("80").ok());
  EXPECT_FALSE(parseListenAddress("deathstar:80").ok());
  auto any6 = parseListenAddress("[::]:80");
  ASSERT_TRUE(any6.ok()) << any6.error().toString();
  EXPECT_EQ(any6->host, "::");
  EXPECT_EQ(any6->port, 80);
  EXPECT_FALSE(parseListenAddress("[::]").ok());
  EXPECT_FALSE(parseListenAddress(":::80").ok());
}

// "[::]:PORT" (the demo's Death Star) answers IPv4 and IPv6 clients on one socket.
TEST(Server, ListeningOnTheIpv6AnyAddressServesBothFamilies) {
  auto s = HttpServer::listen(ListenAddress{"::", 0},
                              {*parseRoute("POST /v1/request-landing=200:Ship landed")});
  ASSERT_TRUE(s.ok()) << s.error().toString();
  std::atomic<bool> stop{false};
  std::thread t([&] { (void)s->serve(stop); });
  for (const char* host : {"127.0.0.1", "::1"}) {
    auto r = request("POST", Url{host, s->port(), "/v1/request-landing"}, "", 2s);
    ASSERT_TRUE(r.ok()) << host << ": " << r.error().toString();
    EXPECT_EQ(r->status, 200) << host;
    EXPECT_EQ(r->body, "Ship landed\n") << host;
  }
  stop = true;
  t.join();
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = HttpServer::listen(
        {"127.0.0.1", 0}, {*parseRoute("POST /v1/request-landing=200:Ship landed"),
                           *parseRoute("PUT /v1/exhaust-port=500:Panic: deathstar exploded")});
    ASSERT_TRUE(s.ok()) << s.error().toString();
    server_.emplace(std::move(*s));
    url_.host = "127.0.0.1";
    url_.port = server_->port();
    thread_ = std::thread([this] { (void)server_->serve(stop_); });
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Result<HttpResponse> call(const std::string& method, const std::string& path) {
    Url u = url_;
    u.path = path;
    return request(method, u, "", 2s);
  }

  std::optional<HttpServer> server_;
  Url url_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(ServerTest, AnswersRoutesAndRejectsTheRest) {
  auto landed = call("POST", "/v1/request-landing");
  ASSERT_TRUE(landed.ok()) << landed.error().toString();
  EXPECT_EQ(landed->status, 200);
  EXPECT_EQ(landed->reason, "OK");
  EXPECT_EQ(landed->body, "Ship landed\n");
  auto panic = call("PUT", "/v1/exhaust-port");
  ASSERT_TRUE(panic.ok());
  EXPECT_EQ(panic->status, 500);
  EXPECT_EQ(panic->body, "Panic: deathstar exploded\n");
  auto wrong_method = call("GET", "/v1/request-landing");
  ASSERT_TRUE(wrong_method.ok());
  EXPECT_EQ(wrong_method->status, 405);
  auto unknown = call("POST", "/nowhere");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  // A request with a body is answered as well (the body is read and ignored).
  Url u = url_;
  u.path = "/v1/request-landing";
  auto with_body = request("POST", u, std::string(100000, 'x'), 2s);
  ASSERT_TRUE(with_body.ok()) << with_body.error().toString();
  EXPECT_EQ(with_body->status, 200);
}

TEST(Client, RefusedIsUnavailableAndSilenceIsATimeout) {
  // A port nobody listens on: refused at once.
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&a), &len);
  Url u{"127.0.0.1", ntohs(a.sin_port), "/"};
  auto refused = request("GET", u, "", 2s);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable) << refused.error().toString();

  // Listening but never answering (what a dropped reply looks like from the client): timeout.
  ASSERT_EQ(::listen(probe.get(), 4), 0);
  auto start = std::chrono::steady_clock::now();
  auto silent = request("GET", u, "", 300ms);
  ASSERT_FALSE(silent.ok());
  EXPECT_EQ(silent.error().code(), ErrorCode::kDeadlineExceeded) << silent.error().toString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// The binaries as a script calls them: exit statuses and output.
TEST(Binaries, ClientExitStatusesTellWhatHappened) {
  EXPECT_EQ(run({CILIUM_HTTP_SERVER_BINARY, "--route=bogus"})->exit_code, 2);
  EXPECT_EQ(run({CILIUM_HTTP_CLIENT_BINARY, "GET"})->exit_code, 2);
  EXPECT_EQ(run({CILIUM_HTTP_CLIENT_BINARY, "GET", "ftp://x/"})->exit_code, 2);
  EXPECT_EQ(run({CILIUM_HTTP_CLIENT_BINARY, "GET", "http://x/", "--timeout", "-1"})->exit_code, 2);

  // A server on a known port, then the client against it.
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&a), &len);
  std::string port = std::to_string(ntohs(a.sin_port));
  probe.reset();
  auto srv = spawn({CILIUM_HTTP_SERVER_BINARY, "--listen=127.0.0.1:" + port,
                    "--route=POST /v1/request-landing=200:Ship landed"});
  ASSERT_TRUE(srv.ok());
  std::string base = "http://127.0.0.1:" + port;
  RunOutput ok;
  for (int i = 0; i < 200; ++i) {  // until the server listens
    ok = *run({CILIUM_HTTP_CLIENT_BINARY, "POST", base + "/v1/request-landing"});
    if (ok.exit_code != 3) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "HTTP 200 OK\nShip landed\n");
  auto missing = run({CILIUM_HTTP_CLIENT_BINARY, "GET", base + "/nowhere"});
  EXPECT_EQ(missing->exit_code, 1);
  EXPECT_EQ(missing->out.substr(0, 12), "HTTP 404 Not");
  srv->stop();
  auto refused = run({CILIUM_HTTP_CLIENT_BINARY, "POST", base + "/", "--timeout", "2"});
  EXPECT_EQ(refused->exit_code, 3) << refused->err;
}

class ManifestsTool : public ::testing::Test {
 protected:
  RunOutput tool(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {CILIUM_LOCAL_MANIFESTS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : RunOutput{};
  }
  const std::string demo_ = std::string(CILIUM_SOURCE_DIR) + "/deploy/local/demo/manifests";
  testing::TempDir tmp_;
};

TEST_F(ManifestsTool, ListsTheDemoPods) {
  auto r = tool({"pods", demo_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "default/deathstar-1\ndefault/deathstar-2\ndefault/tiefighter\ndefault/xwing\n");
}

TEST_F(ManifestsTool, GivesAPodsContainerCommand) {
  auto r = tool({"command", demo_, "default/deathstar-2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (const char* a : {"cilium-http-server", "--listen=[::]:80",
                        "--route=POST /v1/request-landing=200:Ship landed",
                        "--route=PUT /v1/exhaust-port=500:Panic: deathstar exploded"})
    expected += std::string(a) + '\0';
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(tool({"command", demo_, "default/nobody"}).exit_code, 1);
}

TEST_F(ManifestsTool, WritesEndpointSlicesForTheSelectedPodsWithAddresses) {
  // The deathstar Service is PreferDualStack (IPv4, IPv6): a slice per family, each with the
  // addresses of that family (a pod without an IPv6 address is in the IPv4 slice only).
  std::ofstream(tmp_.file("addrs")) << "default/deathstar-1 10.200.0.11 node-2\n"
                                       "default/deathstar-1 fd00:10:200::11 node-2\n"
                                       "default/deathstar-2 10.200.0.12 node-2\n"
                                       "default/xwing 10.200.0.13\n"
                                       "default/xwing fd00:10:200::13\n";
  auto r = tool({"endpointslices", demo_, tmp_.file("addrs")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto list = nlohmann::json::parse(r.out);
  ASSERT_EQ(list["items"].size(), 2u) << r.out;
  const auto& s = list["items"][0];
  EXPECT_EQ(s["kind"], "EndpointSlice");
  EXPECT_EQ(s["addressType"], "IPv4");
  EXPECT_EQ(s["metadata"]["namespace"], "default");
  EXPECT_EQ(s["metadata"]["labels"]["kubernetes.io/service-name"], "deathstar");
  ASSERT_EQ(s["endpoints"].size(), 2u);
  EXPECT_EQ(s["endpoints"][0]["addresses"][0], "10.200.0.11");
  EXPECT_EQ(s["endpoints"][0]["nodeName"], "node-2");
  EXPECT_EQ(s["endpoints"][1]["addresses"][0], "10.200.0.12");
  EXPECT_EQ(s["ports"][0]["port"], 80);
  EXPECT_EQ(s["ports"][0]["protocol"], "TCP");
  const auto& s6 = list["items"][1];
  EXPECT_EQ(s6["addressType"], "IPv6");
  EXPECT_NE(s6["metadata"]["name"], s["metadata"]["name"]);
  EXPECT_EQ(s6["metadata"]["labels"]["kubernetes.io/service-name"], "deathstar");
  ASSERT_EQ(s6["endpoints"].size(), 1u) << s6.dump();
  EXPECT_EQ(s6["endpoints"][0]["addresses"][0], "fd00:10:200::11");
  EXPECT_EQ(s6["ports"], s["ports"]);

  std::ofstream(tmp_.file("bad"), std::ios::trunc) << "default/xwing 10.200.0.300\n";
  EXPECT_EQ(tool({"endpointslices", demo_, tmp_.file("bad")}).exit_code, 1);
}

TEST_F(ManifestsTool, ABrokenFileIsReportedByName) {
  std::ofstream(tmp_.file("pods.yaml")) << "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n";
  auto r = tool({"pods", tmp_.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("pods.yaml"), std::string::npos) << r.err;
  std::ofstream(tmp_.file("pods.yaml"), std::ios::trunc)
      << "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {x: [1]}\n";
  r = tool({"pods", tmp_.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("metadata.labels"), std::string::npos) << r.err;
  EXPECT_EQ(tool({"pods", tmp_.file("missing")}).exit_code, 1);
}

}  // namespace
}  // namespace cilium::local
