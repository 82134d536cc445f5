// The REST client's HTTP/1.1 transport against a scripted server on a Unix socket: request
// framing, the three ways a response body ends, streaming, and every transport failure.
#include "api/client/unix_http.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "agent/common/fd.h"
#include "tests/harness/temp_dir.h"

namespace cilium::api {
namespace {

using namespace std::chrono_literals;

// Accepts one connection, reads the request (headers and a Content-Length body), then writes
// `pieces` one by one and closes, unless `hold` keeps the connection open without answering.
class ScriptedServer {
 public:
  ScriptedServer(const std::string& path, std::vector<std::string> pieces, bool hold = false)
      : path_(path) {
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_.get(), 4), 0);
    thread_ = std::thread([this, pieces = std::move(pieces), hold] {
      UniqueFd c(::accept(listen_.get(), nullptr, nullptr));
      if (!c) return;
      std::string buf;
      char tmp[4096];
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(c.get(), tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      size_t want = 0;
      if (auto p = buf.find("Content-Length: "); p != std::string::npos)
        want = std::stoul(buf.substr(p + 16));
      while (buf.size() < end + 4 + want) {
        ssize_t n = ::recv(c.get(), tmp, sizeof tmp, 0);
        if (n <= 0) break;
        buf.append(tmp, static_cast<size_t>(n));
      }
      request_ = buf;
      for (const auto& piece : pieces) {
        (void)::send(c.get(), piece.data(), piece.size(), MSG_NOSIGNAL);
        std::this_thread::yield();
      }
      if (hold) {
        char x;
        (void)::recv(c.get(), &x, 1, 0);  // until the client gives up and closes
      }
    });
  }
  ~ScriptedServer() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // The raw request the server received (valid after join()).
  const std::string& request() const { return request_; }

 private:
  std::string path_;
  UniqueFd listen_;
  std::thread thread_;
  std::string request_;
};

class UnixHttpTest : public ::testing::Test {
 protected:
  std::string sock() { return dir_.file("agent.sock"); }
  testing::TempDir dir_;
};

TEST_F(UnixHttpTest, ContentLengthResponseAndRequestFraming) {
  ScriptedServer srv(sock(), {"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                              "content-length: 11\r\n\r\n{\"id\":42}\r\n"});
  UnixHttpRequest req{"PUT",
                      "/v1/endpoint/container-id:abc",
                      {{"Accept", "application/json"}},
                      std::string("{\"a\":1}")};
  auto r = unixHttpRoundTrip(sock(), req, 2s);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "{\"id\":42}\r\n");
  srv.join();
  const std::string& q = srv.request();
  EXPECT_EQ(q.rfind("PUT /v1/endpoint/container-id:abc HTTP/1.1\r\n", 0), 0u) << q;
  EXPECT_NE(q.find("Host: localhost\r\n"), std::string::npos);
  EXPECT_NE(q.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(q.find("Accept: application/json\r\n"), std::string::npos);
  EXPECT_NE(q.find("Content-Length: 7\r\n\r\n{\"a\":1}"), std::string::npos) << q;
}

TEST_F(UnixHttpTest, PostWithoutBodySaysContentLengthZero) {
  ScriptedServer srv(sock(), {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"});
  auto r = unixHttpRoundTrip(sock(), {"POST", "/v1/ipam", {}, std::nullopt}, 2s);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  srv.join();
  EXPECT_NE(srv.request().find("Content-Length: 0\r\n"), std::string::npos) << srv.request();
}

TEST_F(UnixHttpTest, ChunkedBodyAcrossWrites) {
  ScriptedServer srv(sock(), {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                              "lo\r\n", "6;ext=1\r\n world\r\n", "0\r\n\r\n"});
  auto r = unixHttpRoundTrip(sock(), {"GET", "/v1/healthz", {}, std::nullopt}, 2s);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->body, "hello world");
}

TEST_F(UnixHttpTest, BodyWithoutLengthEndsAtClose) {
  ScriptedServer srv(sock(), {"HTTP/1.0 404 Not Found\r\n\r\n\"no such", " endpoint\""});
  auto r = unixHttpRoundTrip(sock(), {"GET", "/v1/endpoint/1", {}, std::nullopt}, 2s);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "\"no such endpoint\"");
}

TEST_F(UnixHttpTest, SinkSeesChunksAndCanStop) {
  ScriptedServer srv(sock(),
                     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "2\r\na\n\r\n",
                      "2\r\nb\n\r\n", "2\r\nc\n\r\n"},
                     /*hold=*/true);
  std::string seen;
  auto r = unixHttpRoundTrip(sock(), {"GET", "/v1/monitor", {}, std::nullopt}, 5s,
                             [&](int status, std::string_view data) {
                               EXPECT_EQ(status, 200);
                               seen.append(data);
                               return seen.size() < 4;  // stop after the second event
                             });
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(seen, "a\nb\n");
  EXPECT_EQ(r->body, "");
}

TEST_F(UnixHttpTest, MissingSocketIsUnavailable) {
  auto r = unixHttpRoundTrip(sock(), {"GET", "/v1/healthz", {}, std::nullopt}, 1s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message(), "cannot reach the agent at " + sock() +
                                     ": connection failed (is cilium-agent running?)");
}

TEST_F(UnixHttpTest, SilentAgentTimesOut) {
  ScriptedServer srv(sock(), {}, /*hold=*/true);
  auto start = std::chrono::steady_clock::now();
  auto r = unixHttpRoundTrip(sock(), {"GET", "/v1/healthz", {}, std::nullopt}, 300ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("did not answer in time"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(UnixHttpTest, BrokenResponsesAreErrorsNotCrashes) {
  struct Case {
    std::vector<std::string> pieces;
    ErrorCode code;
  };
  std::vector<Case> cases = {
      {{"SSH-2.0-OpenSSH\r\n\r\n"}, ErrorCode::kInternal},
      {{"HTTP/1.1 2x0 OK\r\n\r\n"}, ErrorCode::kInternal},
      {{"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n"}, ErrorCode::kInternal},
      {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}, ErrorCode::kInternal},
      {{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"}, ErrorCode::kUnavailable},
      {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"}, ErrorCode::kUnavailable},
      {{"HTTP/1.1 200 OK\r\n"}, ErrorCode::kUnavailable},
      {{"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"},
       ErrorCode::kInternal},
      {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"},
       ErrorCode::kInternal},
      {{}, ErrorCode::kUnavailable},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string path = dir_.file("c" + std::to_string(i) + ".sock");
    ScriptedServer srv(path, cases[i].pieces);
    auto r = unixHttpRoundTrip(path, {"GET", "/", {}, std::nullopt}, 2s);
    ASSERT_FALSE(r.ok()) << "case " << i;
    EXPECT_EQ(r.error().code(), cases[i].code) << "case " << i << ": " << r.error().toString();
    EXPECT_NE(r.error().message().find(path), std::string::npos) << r.error().message();
  }
}

TEST_F(UnixHttpTest, AnAnswerBeforeTheBodyIsReadWhenTheSendFails) {
  // The agent refuses from the head (413) and closes without reading the body: the send breaks
  // half way, and the answer is what the caller gets.
  UniqueFd listen(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock().c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(listen.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(listen.get(), 4), 0);
  std::thread server([&] {
    UniqueFd c(::accept(listen.get(), nullptr, nullptr));
    std::string buf;
    char tmp[4096];
    while (buf.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c.get(), tmp, sizeof tmp, 0);
      if (n <= 0) return;
      buf.append(tmp, static_cast<size_t>(n));
    }
    std::string res =
        "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 24\r\nConnection: close\r\n\r\n"
        "\"request body too large\"";
    (void)::send(c.get(), res.data(), res.size(), MSG_NOSIGNAL);
  });
  auto r = unixHttpRoundTrip(sock(), {"PUT", "/v1/policy", {}, std::string(64 << 20, 'x')}, 5000ms);
  server.join();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->body, "\"request body too large\"");
}

}  // namespace
}  // namespace cilium::api
