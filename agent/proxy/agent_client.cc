// The proxy's agent connection.
#include "agent/proxy/agent_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/common/fd.h"
#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/proxy/wire.h"

namespace cilium::proxy {
namespace {

auto& log() {
  static auto l = cilium::logger("proxy-agent");
  return l;
}

Status sendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno, "send to agent");
    }
    off += static_cast<size_t>(n);
  }
  return okStatus();
}

}  // namespace

AgentClient::AgentClient(AgentClientOptions options, Proxy& proxy)
    : options_(std::move(options)), proxy_(proxy) {}

AgentClient::~AgentClient() { stop(); }

Status AgentClient::restore() {
  if (options_.state_dir.empty()) return Error(ErrorCode::kNotFound, "no state directory");
  auto text = readFile(statePath());
  if (!text.ok()) return text.error();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kInvalidArgument, statePath() + ": not JSON");
  return apply(j, false);
}

Status AgentClient::apply(const nlohmann::json& j, bool persist) {
  CILIUM_ASSIGN_OR_RETURN(auto snapshot, snapshotFromJson(j));
  CILIUM_ASSIGN_OR_RETURN(auto compiled, CompiledPolicy::compile(snapshot));
  CILIUM_RETURN_IF_ERROR(
      proxy_.setPolicy(std::move(compiled), snapshot.http_ingress_port, snapshot.http_egress_port));
  if (persist && !options_.state_dir.empty()) {
    auto st = writeFileAtomic(statePath(), toJson(snapshot).dump() + "\n", 0600);
    if (!st.ok()) log()->warn("cannot persist the policy: {}", st.error().message());
  }
  log()->info("policy version={} endpoints={} in force", snapshot.version,
              snapshot.endpoints.size());
  return okStatus();
}

void AgentClient::start() {
  thread_ = std::thread([this] { run(); });
}

void AgentClient::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AgentClient::record(AccessRecord r) {
  std::lock_guard lock(mu_);
  if (queue_.size() >= options_.max_queued_records) {
    dropped_++;
    return;
  }
  queue_.push_back(std::move(r));
  if (queue_.size() == 1) cv_.notify_all();
}

void AgentClient::run() {
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", options_.socket_path.c_str());
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      continue;
    }
    backoff = std::chrono::milliseconds(100);
    timeval tv{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    auto current = proxy_.policy();
    nlohmann::json hello = {{"type", "hello"},
                            {"pid", ::getpid()},
                            {"restarts", options_.restarts},
                            {"version", "cilium-proxy"},
                            {"policyVersion", current ? current->version() : 0}};
    if (!sendAll(fd.get(), encodeFrame(hello)).ok()) continue;
    connected_ = true;
    log()->info("connected to the agent at {}", options_.socket_path);
    FrameReader reader;
    std::array<char, 65536> buf{};
    bool alive = true;
    while (alive) {
      std::deque<AccessRecord> out;
      {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        out.swap(queue_);
      }
      if (!out.empty() && !sendAll(fd.get(), encodeRecordsFrame(out)).ok()) break;
      pollfd p{fd.get(), POLLIN, 0};
      int pr = ::poll(&p, 1, 50);
      if (pr < 0 && errno != EINTR) break;
      if (pr <= 0) continue;
      ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
      if (n <= 0) break;
      reader.feed(buf.data(), static_cast<size_t>(n));
      for (;;) {
        auto msg = reader.next();
        if (!msg.ok()) {
          log()->warn("agent socket: {}", msg.error().message());
          alive = false;
          break;
        }
        if (!msg->has_value()) break;
        const auto& m = **msg;
        auto type = m.value("type", std::string());
        if (type == "policy") {
          auto st = apply(m, true);
          if (!st.ok()) {
            // Refused whole: the snapshot in force stays; the agent sees no acknowledgement.
            log()->error("policy refused: {}", st.error().message());
            continue;
          }
          if (!sendAll(fd.get(), encodeFrame({{"type", "ack"}, {"version", m.value("version", 0)}}))
                   .ok()) {
            alive = false;
            break;
          }
        }
      }
    }
    connected_ = false;
    log()->info("agent connection lost; reconnecting");
  }
}

}  // namespace cilium::proxy
