// REST server and client over a real Unix socket in a temp dir: socket lifecycle, error mapping,
// streaming, graceful shutdown, and abuse: idle and slow connections, oversized and mistyped
// bodies, handlers that do not finish, a full handler pool.
#include "agent/api/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

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

// A raw client connection for what api::Client never does: stay idle, send slowly, send
// malformed, mistyped or oversized requests, several on one connection.
class RawConn {
 public:
  explicit RawConn(const std::string& path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fd_.reset();
  }
  bool connected() const { return fd_.valid(); }
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  struct Answer {
    int status = 0;
    std::string body;
  };
  // The next response (an interim 100 Continue too), or nullopt when none came within `timeout`
  // or the connection closed first.
  std::optional<Answer> read(std::chrono::milliseconds timeout = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return std::nullopt;
    Answer a;
    a.status = std::stoi(buf_.substr(9, 3));
    size_t length = 0;
    std::string head = buf_.substr(0, end);
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto p = head.find("content-length:"); p != std::string::npos)
      length = std::stoul(head.substr(p + 15));
    buf_.erase(0, end + 4);
    while (buf_.size() < length)
      if (!fill(deadline)) return std::nullopt;
    a.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return a;
  }
  // True when the server closes the connection within `timeout` (what it sent first is skipped).
  bool closedWithin(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!waitReadable(deadline)) return false;
      char tmp[4096];
      ssize_t n = ::recv(fd_.get(), tmp, sizeof tmp, 0);
      if (n <= 0) return true;
    }
  }

 private:
  bool waitReadable(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_.get(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) == 1;
  }
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (!waitReadable(deadline)) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_.get(), tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  UniqueFd fd_;
  std::string buf_;
};

// The process's resident set in KiB.
long rssKiB() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// ASan keeps freed memory in quarantine: RSS says nothing. GCC says so with a macro, clang with
// __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define CILIUM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CILIUM_TEST_ASAN 1
#endif
#endif
#ifdef CILIUM_TEST_ASAN
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

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

TEST_F(ServerTest, IdleAndSlowConnectionsDoNotStarveHealthz) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  // Twice as many connections as handler threads, half of them silent, half sending a request
  // head one byte at a time.
  std::vector<RawConn> idle, slow;
  for (int i = 0; i < 32; i++) {
    idle.emplace_back(sock_);
    slow.emplace_back(sock_);
    ASSERT_TRUE(idle.back().connected() && slow.back().connected());
    ASSERT_TRUE(slow.back().send("GET /v1/healthz HTTP/1.1\r\nHost: x\r\n"));
  }
  std::atomic<bool> stop{false};
  std::thread loris([&] {
    while (!stop) {
      for (auto& c : slow) (void)c.send("X");
      std::this_thread::sleep_for(20ms);
    }
  });
  ASSERT_TRUE(waitFor([&] { return server.stats().connections >= 64; }));
  // A correctness bound for "not starved", not a performance measurement (bench/api_bench).
  for (int i = 0; i < 5; i++) {
    auto t0 = std::chrono::steady_clock::now();
    auto h = Client(ClientOptions{sock_, 5000ms}).healthz();
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(h.ok()) << h.error().toString();
    EXPECT_LT(took, 1s) << "healthz took "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms with 64 idle and slow connections open";
  }
  auto put = Client(ClientOptions{sock_, 5000ms}).putPolicy("[]");
  EXPECT_TRUE(put.ok()) << put.error().toString();
  stop = true;
  loris.join();
}

TEST_F(ServerTest, IdleConnectionsAreClosedAndSlowRequestsGet408) {
  ServerOptions o = options();
  o.idle_timeout = 300ms;
  o.read_timeout = 300ms;
  Server server(router_, o);
  ASSERT_TRUE(server.start().ok());

  RawConn silent(sock_);
  EXPECT_TRUE(silent.closedWithin(3000ms)) << "a connection that never sends is closed";

  RawConn kept(sock_);
  ASSERT_TRUE(kept.send("GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto first = kept.read();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_TRUE(kept.closedWithin(3000ms)) << "a kept-alive connection left idle is closed";

  // Slow loris: a byte every 50 ms keeps no connection past the read deadline.
  RawConn slow(sock_);
  ASSERT_TRUE(slow.send("GET /v1/healthz HTTP/1.1\r\n"));
  std::optional<RawConn::Answer> answer;
  for (int i = 0; i < 60 && !answer; i++) {
    (void)slow.send("X");
    answer = slow.read(50ms);
  }
  ASSERT_TRUE(answer) << "no answer to a request head sent a byte at a time";
  EXPECT_EQ(answer->status, 408);
  EXPECT_EQ(answer->body, "\"the request did not arrive within 300ms\"");

  // A body that stops half way.
  RawConn half(sock_);
  ASSERT_TRUE(half.send("PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[1,"));
  auto late = half.read(3000ms);
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, 408);
  EXPECT_GE(server.stats().timeouts, 3u);
}

TEST_F(ServerTest, OversizedBodiesAreRefusedBeforeTheyAreRead) {
  ServerOptions o = options();
  o.max_body_bytes = 1 << 20;
  Server server(router_, o);
  ASSERT_TRUE(server.start().ok());

  // Content-Length over the limit: refused at once, with nothing of the body sent.
  RawConn big(sock_);
  ASSERT_TRUE(
      big.send("PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 104857600\r\n\r\n"));
  auto refused = big.read(2000ms);
  ASSERT_TRUE(refused) << "no answer before the body";
  EXPECT_EQ(refused->status, 413);
  EXPECT_EQ(refused->body, "\"request body too large\"");
  EXPECT_TRUE(big.closedWithin(3000ms));

  // With Expect: 100-continue the client is told before it sends anything, and not asked to go on.
  RawConn expect(sock_);
  ASSERT_TRUE(
      expect.send("PUT /v1/policy HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  "Content-Length: 104857600\r\n\r\n"));
  auto no_continue = expect.read(2000ms);
  ASSERT_TRUE(no_continue);
  EXPECT_EQ(no_continue->status, 413);
  RawConn small(sock_);
  ASSERT_TRUE(
      small.send("PUT /v1/policy HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 2\r\n\r\n"));
  auto go_on = small.read(2000ms);
  ASSERT_TRUE(go_on);
  EXPECT_EQ(go_on->status, 100);
  ASSERT_TRUE(small.send("[]"));
  auto ok = small.read(2000ms);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);

  // Chunked: counted as it arrives and refused past the limit; the rest is read and dropped.
  RawConn chunked(sock_);
  ASSERT_TRUE(
      chunked.send("PUT /v1/policy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk = fmt::format("{:x}\r\n{}\r\n", 65536, std::string(65536, 'x'));
  for (int i = 0; i < 32; i++) ASSERT_TRUE(chunked.send(chunk)) << "chunk " << i;
  auto over = chunked.read(2000ms);
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 413);

  EXPECT_EQ(server.stats().refused_bodies, 3u);
  EXPECT_EQ(server.stats().body_bytes, 0u);
  EXPECT_TRUE(client().healthz().ok());
}

TEST_F(ServerTest, RefusedLargeBodiesLeaveNoMemoryBehind) {
  ASSERT_TRUE(router_
                  .add(Method::kPut, "/v1/endpoint/{id}",
                       [](const Request& r) -> Result<Response> {
                         CILIUM_ASSIGN_OR_RETURN(auto ecr, r.decodeBody<EndpointChangeRequest>(
                                                               "EndpointChangeRequest"));
                         return Response::empty(201);
                       })
                  .ok());
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  // 15.7 MiB, under the 16 MiB limit, refused by the handler: labels must be a list.
  std::string body = R"({"labels":")" + std::string((157 << 20) / 10 - 14, 'a') + R"("})";
  auto send = [&] {
    // Under ASan four clients pushing 15.7 MiB each through the parser take seconds apiece.
    auto r = Client(ClientOptions{sock_, kSanitized ? 120000ms : 10000ms})
                 .call("PUT", "/v1/endpoint/1", body);
    ASSERT_TRUE(r.ok()) << r.error().toString();
    EXPECT_EQ(r->status, 400);
  };
  send();
  long before = rssKiB();
  // From several clients at once, so that several handler threads (arenas) see large bodies.
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; t++)
    clients.emplace_back([&] {
      for (int i = 0; i < 4; i++) send();
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(server.stats().body_bytes, 0u);
  if (kSanitized) GTEST_SKIP() << "RSS is meaningless under ASan";
  long grew = rssKiB() - before;
  // 16 bodies of 15.7 MiB went through; what stays is a few pages, not bodies.
  EXPECT_LT(grew, 48 * 1024) << "RSS grew by " << grew << " KiB";
}

TEST_F(ServerTest, FormEncodedBodiesGet415NamingTheType) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  auto put = [&](std::string_view content_type, size_t size) {
    RawConn c(sock_);
    std::string head = "PUT /v1/policy HTTP/1.1\r\nHost: x\r\n";
    if (!content_type.empty()) head += fmt::format("Content-Type: {}\r\n", content_type);
    head += fmt::format("Content-Length: {}\r\n\r\n", size);
    EXPECT_TRUE(c.send(head + std::string(size, '[')));
    auto a = c.read();
    return a ? *a : RawConn::Answer{};
  };
  // What `curl -d @policy.json` sends: over 8 KiB it used to be a misleading 413.
  for (size_t size : {9000u, 10u}) {
    auto a = put("application/x-www-form-urlencoded", size);
    EXPECT_EQ(a.status, 415) << size;
    EXPECT_NE(a.body.find("unsupported Content-Type application/x-www-form-urlencoded"),
              std::string::npos)
        << a.body;
    EXPECT_NE(a.body.find("-H 'Content-Type: application/json'"), std::string::npos) << a.body;
  }
  EXPECT_EQ(put("text/plain", 10).status, 415);
  for (auto type : {"application/json", "application/json; charset=utf-8", "application/yaml",
                    "text/yaml", "application/merge-patch+json", ""})
    EXPECT_EQ(put(type, 9000).status, 200) << type;
}

TEST_F(ServerTest, AHandlerThatDoesNotFinishGets504) {
  std::promise<void> release;
  auto released = release.get_future().share();
  ASSERT_TRUE(router_
                  .add(Method::kGet, "/v1/stuck",
                       [&](const Request&) -> Result<Response> {
                         released.wait();
                         return Response::json("late");
                       })
                  .ok());
  ServerOptions o = options();
  o.handler_timeout = 300ms;
  Server server(router_, o);
  ASSERT_TRUE(server.start().ok());
  auto t0 = std::chrono::steady_clock::now();
  auto r = client().call("GET", "/v1/stuck?x=1");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(r->body, "\"the agent did not finish GET /v1/stuck within 300ms\"");
  EXPECT_TRUE(client().healthz().ok()) << "other requests are served meanwhile";
  release.set_value();
}

TEST_F(ServerTest, ARequestThatFindsEveryHandlerBusyGets503AndNeverRuns) {
  std::promise<void> entered, release;
  auto released = release.get_future().share();
  std::atomic<int> ran{0};
  ASSERT_TRUE(router_
                  .add(Method::kGet, "/v1/stuck",
                       [&](const Request&) -> Result<Response> {
                         entered.set_value();
                         released.wait();
                         return Response::json("done");
                       })
                  .ok());
  ASSERT_TRUE(router_
                  .add(Method::kPut, "/v1/counted",
                       [&](const Request&) -> Result<Response> {
                         ran++;
                         return Response::empty(201);
                       })
                  .ok());
  ServerOptions o = options();
  o.threads = 1;
  o.queue_timeout = 200ms;
  Server server(router_, o);
  ASSERT_TRUE(server.start().ok());
  auto stuck = std::async(std::launch::async, [&] { return client().call("GET", "/v1/stuck"); });
  entered.get_future().wait();
  auto busy = client().call("PUT", "/v1/counted", "{}");
  ASSERT_TRUE(busy.ok()) << busy.error().toString();
  EXPECT_EQ(busy->status, 503);
  EXPECT_NE(busy->body.find("the agent is busy"), std::string::npos) << busy->body;
  EXPECT_NE(busy->body.find("the request was not run"), std::string::npos) << busy->body;
  release.set_value();
  ASSERT_EQ(stuck.get()->status, 200);
  // The one handler thread took the expired request before this one: it did not run it.
  EXPECT_TRUE(client().healthz().ok());
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(client().call("PUT", "/v1/counted", "{}")->status, 201);
  EXPECT_EQ(ran.load(), 1);
}

TEST_F(ServerTest, ConnectionsOverTheLimitGet503) {
  ServerOptions o = options();
  o.max_connections = 4;
  Server server(router_, o);
  ASSERT_TRUE(server.start().ok());
  std::vector<RawConn> held;
  for (int i = 0; i < 4; i++) held.emplace_back(sock_);
  ASSERT_TRUE(waitFor([&] { return server.stats().connections == 4; }));
  auto over = client().call("GET", "/v1/healthz");
  ASSERT_TRUE(over.ok()) << over.error().toString();
  EXPECT_EQ(over->status, 503);
  EXPECT_EQ(over->body, "\"too many connections to the agent's API (at most 4)\"");
  held.pop_back();
  EXPECT_TRUE(waitFor([&] { return client().healthz().ok(); }));
}

TEST_F(ServerTest, KeepAlivePipelinedAndMalformedRequests) {
  Server server(router_, options());
  ASSERT_TRUE(server.start().ok());
  RawConn c(sock_);
  ASSERT_TRUE(
      c.send("GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /v1/identity/7 HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto a = c.read(), b = c.read();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(b->status, 404);
  EXPECT_EQ(b->body, "\"identity 7 not found\"");

  RawConn bad(sock_);
  ASSERT_TRUE(bad.send("GET /v1/healthz HTTP/1.1\r\nNo colon here\r\n\r\n"));
  auto malformed = bad.read();
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 400);
  EXPECT_NE(malformed->body.find("malformed HTTP request"), std::string::npos) << malformed->body;

  RawConn huge(sock_);
  ASSERT_TRUE(
      huge.send("GET /v1/healthz HTTP/1.1\r\nX-Big: " + std::string(70000, 'x') + "\r\n\r\n"));
  auto too_big = huge.read();
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 431);
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
