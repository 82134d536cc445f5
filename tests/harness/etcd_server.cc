// EtcdServer and TcpRelay.
#include "tests/harness/etcd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace cilium::testing {

namespace {

// A loopback port nobody listens on right now (bound then released).
uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) std::abort();
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

namespace {

// etcds (and their directories) that test processes which died without their destructors left:
// /tmp/cilu<pid>-etcd-* whose <pid> is gone. Only processes whose command line names such a
// directory are signalled.
void sweepDeadTestsEtcd() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream f(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.rfind(std::string("etcd\0", 5), 0) != 0) continue;
    auto at = cmd.find("/tmp/cilu");
    if (at == std::string::npos) continue;
    pid_t owner = std::atoi(cmd.c_str() + at + 9);
    if (owner <= 0 || ::kill(owner, 0) == 0 || cmd.find("-etcd-", at) == std::string::npos)
      continue;
    ::kill(std::stoi(name), SIGKILL);
  }
  for (const auto& e : std::filesystem::directory_iterator("/tmp", ec)) {
    std::string name = e.path().filename();
    if (name.rfind("cilu", 0) != 0 || name.find("-etcd-") == std::string::npos) continue;
    pid_t owner = std::atoi(name.c_str() + 4);
    if (owner > 0 && ::kill(owner, 0) != 0) std::filesystem::remove_all(e.path(), ec);
  }
}

}  // namespace

bool haveEtcd() {
  auto r = run({"sh", "-c", "command -v etcd"});
  return r.ok() && r->exit_code == 0;
}

EtcdServer::EtcdServer() {
  sweepDeadTestsEtcd();
  std::string tmpl = "/tmp/cilu" + std::to_string(::getpid()) + "-etcd-XXXXXX";
  char* p = ::mkdtemp(tmpl.data());
  if (p == nullptr) std::abort();
  dir_ = p;
  client_port_ = freePort();
  do {
    peer_port_ = freePort();
  } while (peer_port_ == client_port_);
}

EtcdServer::~EtcdServer() {
  kill();
  if (std::getenv("CILIUM_TEST_KEEP_TMP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void EtcdServer::enableTls(std::string ca, std::string server_cert, std::string server_key,
                           std::string client_cert, std::string client_key) {
  tls_ = true;
  ca_ = std::move(ca);
  server_cert_ = std::move(server_cert);
  server_key_ = std::move(server_key);
  client_cert_ = std::move(client_cert);
  client_key_ = std::move(client_key);
}

Status EtcdServer::start(std::chrono::milliseconds timeout) {
  if (process_.pid() > 0 && process_.running()) return okStatus();
  std::string client = endpoint();
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  SpawnOptions so;
  so.stdout_path = dir_ + "/etcd.log";
  so.stderr_path = dir_ + "/etcd.log";
  std::vector<std::string> argv = {"etcd",         "--name",
                                   "test",         "--data-dir",
                                   dir_ + "/data", "--listen-client-urls",
                                   client,         "--advertise-client-urls",
                                   client,         "--listen-peer-urls",
                                   peer,           "--initial-advertise-peer-urls",
                                   peer,           "--initial-cluster",
                                   "test=" + peer, "--log-level",
                                   "warn",         "--logger",
                                   "zap"};
  if (tls_)
    argv.insert(argv.end(), {"--cert-file", server_cert_, "--key-file", server_key_,
                             "--client-cert-auth", "--trusted-ca-file", ca_});
  CILIUM_ASSIGN_OR_RETURN(process_, spawn(argv, so));
  CILIUM_ASSIGN_OR_RETURN(
      auto c, kvstore::Client::create(config(), {.call_timeout = std::chrono::milliseconds(500)}));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_.running())
      return makeError(ErrorCode::kUnavailable, "etcd exited at start (log: {}/etcd.log)", dir_);
    if (c->serverVersion().ok()) return okStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return makeError(ErrorCode::kDeadlineExceeded, "etcd not serving after {} ms (log: {}/etcd.log)",
                   timeout.count(), dir_);
}

void EtcdServer::kill() {
  if (process_.pid() <= 0) return;
  process_.signal(SIGKILL);
  (void)process_.wait(std::chrono::seconds(10));
  process_ = Process();
}

bool EtcdServer::running() { return process_.pid() > 0 && process_.running(); }

TcpRelay::TcpRelay(uint16_t target_port) : target_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, 64) != 0)
    std::abort();
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

TcpRelay::~TcpRelay() {
  stopping_ = true;
  cut();
  acceptor_.join();
  std::set<std::shared_ptr<std::thread>> pumps;
  {
    std::lock_guard lock(mu_);
    pumps.swap(pumps_);
  }
  for (auto& t : pumps) t->join();
  ::close(listen_fd_);
}

void TcpRelay::cut() {
  cut_ = true;
  std::lock_guard lock(mu_);
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

void TcpRelay::heal() { cut_ = false; }

void TcpRelay::acceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    if (cut_) {
      ::close(c);
      continue;
    }
    int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(target_);
    if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(u);
      ::close(c);
      continue;
    }
    std::lock_guard lock(mu_);
    fds_.insert(c);
    fds_.insert(u);
    pumps_.insert(std::make_shared<std::thread>([this, c, u] { pump(c, u); }));
  }
}

void TcpRelay::pump(int a, int b) {
  std::vector<char> buf(64 * 1024);
  pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (!stopping_ && !cut_) {
    if (::poll(p, 2, 50) < 0) break;
    bool done = false;
    for (int i = 0; i < 2 && !done; i++) {
      if (p[i].revents == 0) continue;
      ssize_t n = ::read(p[i].fd, buf.data(), buf.size());
      if (n <= 0) {
        done = true;
        break;
      }
      const char* d = buf.data();
      while (n > 0) {
        ssize_t w = ::send(p[1 - i].fd, d, n, MSG_NOSIGNAL);  // a cut peer: no SIGPIPE
        if (w <= 0) {
          done = true;
          break;
        }
        d += w;
        n -= w;
      }
    }
    if (done) break;
  }
  std::lock_guard lock(mu_);
  fds_.erase(a);
  fds_.erase(b);
  ::shutdown(a, SHUT_RDWR);
  ::shutdown(b, SHUT_RDWR);
  ::close(a);
  ::close(b);
}

}  // namespace cilium::testing
