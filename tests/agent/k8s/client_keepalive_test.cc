// k8s::Client's request connections: idle keep-alive connections are reused (one TCP connection
// and, over HTTPS, one handshake for many requests); a connection the server closes is replaced
// without the caller seeing it; idle_connections = 0 opens one per request.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "agent/k8s/client.h"

namespace cilium::k8s {
namespace {

// A plain HTTP server that answers every GET with 200 and records the client port of each
// request: requests on one connection share it.
class PortCountingServer {
 public:
  explicit PortCountingServer(size_t keep_alive_max = 1000) {
    server_.set_keep_alive_max_count(keep_alive_max);
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu_);
        ports_.insert(req.remote_port);
        requests_++;
      }
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 1000 && !server_.is_running(); i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~PortCountingServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  size_t connections() {
    std::lock_guard lock(mu_);
    return ports_.size();
  }
  size_t requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::set<int> ports_;
  size_t requests_ = 0;
};

std::unique_ptr<Client> client(const std::string& url, int idle) {
  ClientConfig cfg;
  cfg.server = url;
  cfg.qps = 0;
  cfg.idle_connections = idle;
  auto c = Client::create(cfg);
  EXPECT_TRUE(c.ok()) << c.error().message();
  return std::move(*c);
}

TEST(ClientKeepAliveTest, SequentialRequestsShareOneConnection) {
  PortCountingServer server;
  auto c = client(server.url(), 8);
  for (int i = 0; i < 20; i++) {
    auto r = c->get("/api/v1/namespaces/default/pods");
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(server.requests(), 20u);
  EXPECT_EQ(server.connections(), 1u);
}

TEST(ClientKeepAliveTest, WithoutIdleConnectionsEachRequestConnects) {
  PortCountingServer server;
  auto c = client(server.url(), 0);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(c->get("/api/v1/pods").ok());
  EXPECT_EQ(server.connections(), 5u);
}

// The server closes a connection after 2 requests (as an apiserver closes idle or old ones):
// the client notices before reusing it and every request succeeds.
TEST(ClientKeepAliveTest, AConnectionTheServerClosedIsReplaced) {
  PortCountingServer server(/*keep_alive_max=*/2);
  auto c = client(server.url(), 8);
  for (int i = 0; i < 10; i++) {
    auto r = i % 2 == 0 ? c->get("/api/v1/pods") : c->request("GET", "/api/v1/nodes");
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().message();
  }
  EXPECT_EQ(server.requests(), 10u);
  EXPECT_EQ(server.connections(), 5u);
}

// Concurrent callers each get a connection of their own; afterwards at most idle_connections
// stay open for reuse.
TEST(ClientKeepAliveTest, ConcurrentCallersUseSeparateConnections) {
  PortCountingServer server;
  auto c = client(server.url(), 2);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; i++)
        if (!c->get("/api/v1/pods").ok()) failures++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(server.requests(), 100u);
  size_t opened = server.connections();
  EXPECT_LE(opened, 100u);
  // Sequential requests now reuse the kept connections: none is opened.
  for (int i = 0; i < 10; i++) ASSERT_TRUE(c->get("/api/v1/pods").ok());
  EXPECT_EQ(server.connections(), opened);
}

}  // namespace
}  // namespace cilium::k8s
