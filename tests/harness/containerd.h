// A private containerd for e2e tests (Debian's, with runc): its config, socket, root, state and
// runc root under a scratch directory, started in a network namespace of the test's, and the
// clean-up of whatever its shims and containers leave behind, even after a failed test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/subprocess.h"

namespace cilium::testing {

// The containerd, ctr, runc shim and runc binaries that are missing ("" when all are there).
std::string missingContainerd();

struct ContainerdOptions {
  std::string base;   // scratch directory, created; everything containerd keeps lives under it
  std::string netns;  // where containerd runs: its shims and host-network containers run there
  // Cgroup parent ("/<name>") of everything the test runs; clean-up removes it in every hierarchy.
  std::string cgroup_parent;
  std::string extra_config;  // TOML appended to the config (e.g. the CRI plugin's section)
};

class Containerd {
 public:
  // Writes the config, starts containerd and waits until it answers `ctr version`.
  static Result<std::unique_ptr<Containerd>> start(ContainerdOptions opts);
  // stop(), then cleanup() of the namespaces noted with noteNetns().
  ~Containerd();
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;

  const std::string& socket() const { return socket_; }
  const std::string& base() const { return opts_.base; }
  std::string runcRoot() const { return opts_.base + "/runc"; }
  std::string log() const;

  // `ctr --address <socket> -n k8s.io <args>`.
  Result<RunOutput> ctr(const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // `ctr run` arguments that keep a container's runc state and cgroup in the test's space.
  std::vector<std::string> runArgs(const std::string& id) const;

  // A network namespace path (/run/netns/cni-*) containerd made for the test: removed at clean-up.
  void noteNetns(const std::string& path) { netns_.insert(path); }
  // SIGTERM, then SIGKILL after 15 s.
  void stop();
  // Kills the shims started for this containerd and their children, unmounts what is mounted
  // under base(), removes the noted namespaces, the cgroup parent in every hierarchy, and shim
  // sockets made since the start that nobody listens on.
  void cleanup();

 private:
  explicit Containerd(ContainerdOptions opts);
  ContainerdOptions opts_;
  std::string socket_;
  std::unique_ptr<Process> process_;
  std::set<std::string> netns_;
  time_t started_ = 0;
};

}  // namespace cilium::testing
