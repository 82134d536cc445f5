// REST server and client over a real Unix socket in a temp dir: socket lifecycle, error mapping,
// streaming, graceful shutdown.
#include "agent/api/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>

#include <gtest/gtest.h>

#include "agent/common/fd.h"
#include "agent/common/files.h"
#include "api/client/client.h"
#include "tests/harness/temp_dir.h"

namespace cilium::api {
namespace {

using namespace std::chrono_literals;

// Polls `cond` until it holds or `timeout` passes.
template <typename F>
bool waitFor(F cond, std::chrono::milliseconds timeout = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A stream fed by the test.
class QueueSource : public StreamSource {
 public:
  void push(Json j) {
    std::lock_guard lock(mu_);
    q_.push_back(std::move(j));
    cv_.notify_all();
  }
  void finish() {
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  std::optional<Json> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !q_.empty() || done_; });
    if (q_.empty()) return std::nullopt;
    Json j = std::move(q_.front());
    q_.pop_front();
    return j;
  }
  bool finished() const override {
    std::lock_guard lock(mu_);
    return done_ && q_.empty();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Json> q_;
  bool done_ = false;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sock_ = dir_.file("run/cilium.sock");
    ASSERT_TRUE(router_
                    .add(Method::kGet, "/v1/healthz",
                         [](const Request&) -> Result<Response> {
                           StatusResponse s;
                           s.cilium = ComponentStatus{StatusState::kOk, "ready"};
                           return Response::json(encode(s));
                         })
                    .ok());
    ASSERT_TRUE(router_
                    .add(Method::kGet, "/v1/identity/{id}",
                         [](const Request& r) -> Result<Response> {
                           if (r.param("id") != "1")
                             return makeError(ErrorCode::kNotFound, "identity {} not found",
                                              r.param("id"));
                           return Response::json(encode(Identity{1, {"reserved:host"}, ""}));
                         })
                    .ok());
    ASSERT_TRUE(router_
                    .add(Method::kPut, "/v1/policy",
                         [](const Request& r) -> Result<Response> {
                           return Response::json(
                               encode(Policy{static_cast<int64_t>(r.body.size()), r.body}));
                         })
                    .ok());
    ASSERT_TRUE(router_
                    .add(Method::kGet, "/v1/monitor",
                         [this](const Request&) -> Result<Response> {
                           return Response::streaming(source_);
                         })
                    .ok());
  }

  ServerOptions options() {
    ServerOptions o;
    o.socket_path = sock_;
    o.stream_heartbeat = 50ms;
    o.stream_poll = 20ms;
    return o;
  }

  Client client() { return Client(ClientOptions{sock_, 5000ms}); }

  testing::TempDir dir_;
  std::string sock_;
  Router router_;
  std::shared_ptr<QueueSource> source_ = std::make_shared<QueueSource>();
};

TEST_F(ServerTest, ServesOnASocketWithMode0660AndRemovesItOnStop) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  struct stat st {};
  ASSERT_EQ(::stat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  auto health = client().healthz();
  ASSERT_TRUE(health.ok()) << health.error().toString();
  EXPECT_EQ(health->cilium->state, StatusState::kOk);

  server.stop();
  EXPECT_NE(::stat(sock_.c_str(), &st), 0);
  auto after = client().healthz();
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable);
}

TEST_F(ServerTest, ClientMapsErrorsBack) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  auto c = client();
  auto missing = c.getIdentity("7");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(), "identity 7 not found");
  EXPECT_EQ(c.getIdentity("1")->labels, Labels{"reserved:host"});

  auto unknown = c.getConfig();  // not registered here
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(unknown.error().message(), "no such resource: /v1/config");

  auto wrong = c.call("DELETE", "/v1/healthz");
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 405);

  auto policy = c.putPolicy("[{\"endpointSelector\": {}}]");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->policy, "[{\"endpointSelector\": {}}]");
}

TEST_F(ServerTest, UnreachableAgentIsUnavailable) {
  Client c(ClientOptions{dir_.file("nothing.sock"), 1000ms});
  auto r = c.healthz();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message(), "cannot reach the agent at " + dir_.file("nothing.sock") +
                                     ": connection failed (is cilium-agent running?)");
}

TEST_F(ServerTest, ReplacesAStaleSocketButNotALiveOneOrAFile) {
  ASSERT_TRUE(makeDirs(dir_.file("run")).ok());
  {
    // A socket file nobody listens on, as a killed agent leaves behind.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  Server first(router_, options());
  ASSERT_TRUE(first.start().ok());
  EXPECT_TRUE(client().healthz().ok());

  Server second(router_, options());
  auto st = second.start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_TRUE(client().healthz().ok()) << "the first server must keep its socket";
  first.stop();

  std::ofstream(sock_) << "not a socket";
  Server third(router_, options());
  auto file = third.start();
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().message(), sock_ + " exists and is not a socket");

  ServerOptions longpath = options();
  longpath.socket_path = "/tmp/" + std::string(120, 'x') + ".sock";
  EXPECT_EQ(Server(router_, longpath).start().error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(ServerTest, StreamsNewlineDelimitedJson) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  std::vector<MonitorEvent> got;
  std::thread feeder([&] {
    for (int i = 1; i <= 3; i++) {
      MonitorEvent ev;
      ev.type = "drop";
      ev.source = i;
      source_->push(encode(ev));
    }
    source_->finish();
  });
  auto st = client().monitor({}, [&](const MonitorEvent& ev) {
    got.push_back(ev);
    return true;
  });
  feeder.join();
  ASSERT_TRUE(st.ok()) << st.error().toString();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].source, 3);
  EXPECT_TRUE(waitFor([&] { return server.activeStreams() == 0; }));
}

TEST_F(ServerTest, ServerNoticesAClientThatLeavesAStream) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  MonitorEvent ev;
  ev.type = "trace";
  source_->push(encode(ev));
  int seen = 0;
  auto st = client().monitor({}, [&](const MonitorEvent&) {
    seen++;
    return false;  // hang up after the first event
  });
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(seen, 1);
  // The heartbeat write fails once the client is gone, which frees the stream's thread.
  EXPECT_TRUE(waitFor([&] { return server.activeStreams() == 0; }));
}

TEST_F(ServerTest, StopEndsStreamsAndFinishesInFlightRequests) {
  std::promise<void> entered;
  std::promise<void> release;
  auto released = release.get_future().share();
  ASSERT_TRUE(router_
                  .add(Method::kGet, "/v1/slow",
                       [&](const Request&) -> Result<Response> {
                         entered.set_value();
                         released.wait();
                         return Response::json("done");
                       })
                  .ok());
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());

  std::atomic<bool> stream_ended{false};
  std::thread streamer([&] {
    (void)client().monitor({}, [](const MonitorEvent&) { return true; });
    stream_ended = true;
  });
  ASSERT_TRUE(waitFor([&] { return server.activeStreams() == 1; }));

  auto slow = std::async(std::launch::async, [&] { return client().call("GET", "/v1/slow"); });
  entered.get_future().wait();
  std::thread stopper([&] { server.stop(); });
  // The stream ends although the slow request is still running.
  EXPECT_TRUE(waitFor([&] { return stream_ended.load(); }));
  // New connections are refused while the in-flight one finishes.
  EXPECT_TRUE(waitFor([&] { return !client().healthz().ok(); }));
  release.set_value();
  auto res = slow.get();
  ASSERT_TRUE(res.ok()) << res.error().toString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "\"done\"");
  stopper.join();
  streamer.join();
  struct stat st {};
  EXPECT_NE(::stat(sock_.c_str(), &st), 0) << "socket removed";
}

TEST_F(ServerTest, LimitsStreamsAndBodies) {
  ServerOptions o = options();
  o.max_streams = 1;
  o.max_body_bytes = 1024;
  Server server(router_, o);
  ASSERT_TRUE(server.start().ok());
  std::thread streamer(
      [&] { (void)client().monitor({}, [](const MonitorEvent&) { return true; }); });
  ASSERT_TRUE(waitFor([&] { return server.activeStreams() == 1; }));
  auto second = client().monitor({}, [](const MonitorEvent&) { return true; });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(second.error().message(), "too many streaming clients (at most 1)");

  auto big = client().call("PUT", "/v1/policy", std::string(4096, 'x'));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(big->body, "\"request body too large\"");

  source_->finish();
  streamer.join();
}

TEST(ClientTest, SocketPathFromHostAndEnvironment) {
  EXPECT_EQ(*socketPathFromHost("unix:///var/run/cilium/cilium.sock"),
            "/var/run/cilium/cilium.sock");
  EXPECT_EQ(*socketPathFromHost("/tmp/x.sock"), "/tmp/x.sock");
  EXPECT_FALSE(socketPathFromHost("tcp://1.2.3.4").ok());
  ::setenv("CILIUM_SOCK", "/tmp/env.sock", 1);
  EXPECT_EQ(defaultSocketPath(), "/tmp/env.sock");
  EXPECT_EQ(Client().socketPath(), "/tmp/env.sock");
  ::unsetenv("CILIUM_SOCK");
  EXPECT_EQ(defaultSocketPath(), "/var/run/cilium/cilium.sock");
}

}  // namespace
}  // namespace cilium::api
