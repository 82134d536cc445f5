// Fuzz target: the hand-written HTTP/1.1 response reader of api/client/unix_http.cc, which
// cilium-cni and cilium-dbg use to talk to the agent's socket. A thread serves the input, byte
// for byte, as the agent's answer on a real Unix socket; the first byte picks whether the body
// is collected or streamed to a sink (as GET /monitor reads it). Beyond "never crash, never
// hang": a refusal is kInternal (not HTTP) or kUnavailable (cut short) and names the socket; an
// answer has a three-digit status, and a streamed body reaches only the sink.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "api/client/unix_http.h"
#include "tests/fuzz/scratch_dir.h"

namespace {

using namespace std::chrono_literals;

// One connection at a time: read the request head, send the current answer, close.
class FakeAgent {
 public:
  FakeAgent() {
    path_ = cilium::fuzz::scratchDir() + "/agent.sock";
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size());
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 4) != 0)
      std::abort();
    std::thread([this] { serve(); }).detach();
  }
  ~FakeAgent() = delete;  // lives until exit; its thread never stops

  void answer(std::string bytes) {
    std::lock_guard lock(mu_);
    answer_ = std::move(bytes);
  }
  const std::string& path() const { return path_; }

 private:
  void serve() {
    for (;;) {
      int c = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      std::string out;
      {
        std::lock_guard lock(mu_);
        out = answer_;
      }
      std::string_view rest = out;
      while (!rest.empty()) {
        ssize_t n = ::send(c, rest.data(), rest.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        rest.remove_prefix(static_cast<size_t>(n));
      }
      ::close(c);
    }
  }

  std::string path_;
  int listener_ = -1;
  std::mutex mu_;
  std::string answer_;
};

FakeAgent& agent() {
  static FakeAgent* a = new FakeAgent();
  return *a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FakeAgent& a = agent();
  a.answer(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  cilium::api::UnixHttpRequest req{"GET", "/v1/healthz", {{"Accept", "application/json"}}, {}};
  const bool stream = data[0] % 2 == 1;
  std::string streamed;
  int streamed_status = -1;
  cilium::api::UnixHttpBodySink sink;
  if (stream) {
    sink = [&](int status, std::string_view chunk) {
      streamed_status = status;
      streamed.append(chunk);
      return streamed.size() < (1 << 20);
    };
  }
  // The timeout only matters for an answer that is cut short while more is expected: the
  // fake agent closes after sending, so a read sees the end of the stream at once.
  auto r = cilium::api::unixHttpRoundTrip(a.path(), req, 5s, sink);
  if (!r.ok()) {
    auto code = r.error().code();
    if ((code != cilium::ErrorCode::kInternal && code != cilium::ErrorCode::kUnavailable) ||
        r.error().message().find(a.path()) == std::string::npos)
      std::abort();
    return 0;
  }
  // Three digits (the client maps anything it did not expect to an error).
  if (r->status < 0 || r->status > 999) std::abort();
  if (stream && (!r->body.empty() || (!streamed.empty() && streamed_status != r->status)))
    std::abort();
  return 0;
}
