// A real etcd (Debian's etcd-server) on loopback for tests and benchmarks: free ports, a temporary
// data directory, started and stopped by pid; the destructor kills it and removes the directory
// even when the test failed. Also a loopback TCP relay that a test can cut, to make etcd
// unreachable for one client while it keeps running for others.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "agent/common/error.h"
#include "agent/common/subprocess.h"
#include "agent/kvstore/etcd.h"

namespace cilium::testing {

// True when an `etcd` binary is on PATH (tests skip without it outside CI).
bool haveEtcd();

class EtcdServer {
 public:
  // Picks free loopback ports and a scratch directory; does not start etcd. First kills the
  // etcds of test processes that died without their destructors (and removes their directories).
  EtcdServer();
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Serves https only, with `server_cert`/`server_key`, and requires client certificates signed
  // by `ca`; config() then carries `ca` and the client pair. Call before start().
  void enableTls(std::string ca, std::string server_cert, std::string server_key,
                 std::string client_cert, std::string client_key);

  // Starts etcd (same ports and data directory each time) and waits until it serves.
  Status start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILLs etcd (by pid) and waits for it to exit; the data directory stays.
  void kill();
  bool running();

  uint16_t port() const { return client_port_; }
  std::string endpoint() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_port_);
  }
  kvstore::EtcdConfig config() const {
    return kvstore::EtcdConfig{{endpoint()}, ca_, client_cert_, client_key_, "", ""};
  }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return process_.pid(); }  // 0 when not running

 private:
  std::string dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  bool tls_ = false;
  std::string ca_, server_cert_, server_key_, client_cert_, client_key_;
  Process process_;
};

// Relays loopback TCP connections from its own port to `target_port`. cut() closes every relayed
// connection and refuses new ones (connections are accepted and closed at once) until heal().
class TcpRelay {
 public:
  explicit TcpRelay(uint16_t target_port);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  uint16_t port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void cut();
  void heal();

 private:
  void acceptLoop();
  void pump(int a, int b);

  uint16_t target_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cut_{false};
  std::mutex mu_;
  std::set<int> fds_;
  std::thread acceptor_;
  std::set<std::shared_ptr<std::thread>> pumps_;
};

}  // namespace cilium::testing
