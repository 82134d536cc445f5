// The proxy's side of the agent's socket (wire.h): connects and reconnects, takes policy
// snapshots (compiles, puts them in force, persists them, acknowledges), and sends the access
// records. The snapshot persisted in the state directory lets a restarted proxy enforce at once,
// also while the agent is down.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json_fwd.hpp>

#include "agent/common/error.h"
#include "agent/proxy/proxy.h"

namespace cilium::proxy {

struct AgentClientOptions {
  std::string socket_path;  // the agent's proxy socket
  std::string state_dir;    // "" = persist nothing
  uint32_t restarts = 0;    // how often the supervisor restarted the proxy
  size_t max_queued_records = 10000;
};

class AgentClient {
 public:
  AgentClient(AgentClientOptions options, Proxy& proxy);
  ~AgentClient();  // stop()

  // The snapshot an earlier run persisted (kNotFound when none).
  Status restore();
  void start();
  void stop();
  // Thread-safe; never blocks: a full queue drops (and counts) records.
  void record(AccessRecord r);

  uint64_t dropped() const { return dropped_.load(); }
  bool connected() const { return connected_.load(); }

 private:
  void run();
  Status apply(const nlohmann::json& snapshot, bool persist);
  std::string statePath() const { return options_.state_dir + "/proxy-policy.json"; }

  AgentClientOptions options_;
  Proxy& proxy_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<AccessRecord> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> dropped_{0};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace cilium::proxy
