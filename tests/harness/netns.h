// A node network namespace with pods hanging off it through veth pairs, as the agent sees them on
// a real node; built for one test and removed with everything in it, even when the test fails.
// Names carry the test process's pid ("cilt<pid>-<n>"), so that sweepStale() can remove what a
// killed test left behind without touching anything else.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.h"
#include "agent/common/subprocess.h"

namespace cilium::testing {

struct Pod {
  std::string name;
  std::string netns;        // /run/netns/<prefix>-<name>
  std::string ip;           // IPv4 address, /32 on eth0
  std::string ip6;          // IPv6 address of a dual-stack pod, or "" (see addPod)
  std::string host_ifname;  // host side of the veth, in the node namespace
  int host_ifindex = 0;     // in the node namespace
  std::string mac;          // eth0's MAC inside the pod
  std::string host_mac;     // host side's MAC
};

class Topology {
 public:
  // The pod subnet is 10.<octet>.0.0/16 with the node (router) at 10.<octet>.0.1.
  static Result<std::unique_ptr<Topology>> create(int subnet_octet = 200);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  const std::string& prefix() const { return prefix_; }
  const std::string& nodeNetns() const { return node_netns_; }
  const std::string& routerIp() const { return router_ip_; }
  // A per-test directory on bpffs (created on first use).
  Result<std::string> pinDir();
  // A per-test cgroup-v2 directory (created on first use).
  Result<std::string> cgroupDir();
  // A per-test scratch directory under /tmp (created at construction).
  const std::string& tmpDir() const { return tmp_dir_; }

  // Creates a pod with address `ip` (in the pod subnet) and a veth to the node.
  // With `ip6`, a dual-stack pod: also the /128 and routes through router6() (which bpf_lxc's
  // neighbour discovery responder answers; the node itself keeps IPv6 off). Without, IPv6 is
  // off in the pod.
  Result<Pod> addPod(std::string_view name, std::string_view ip, std::string_view ip6 = {});
  // The pods' IPv6 gateway, fd00:<octet>::1.
  std::string router6() const { return router6_; }
  // Turns IPv6 on in the node namespace (lo gets ::1, where the L7 proxies listen for IPv6),
  // without duplicate address detection; dual-stack pods added from now on also get their /128
  // routed through their veth on the node. Call before addPod.
  Status enableNodeIpv6();
  // Deletes a pod's namespace and veth.
  Status removePod(const Pod& pod);

  Result<RunOutput> exec(const std::string& netns, const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Starts a long-running process in `netns`; the topology stops it on destruction.
  Result<Process*> spawnIn(const std::string& netns, const std::vector<std::string>& argv,
                           const std::string& log_name = "");

 private:
  Topology() = default;
  Status setupNode(int subnet_octet);

  std::string prefix_;
  std::string node_netns_;
  std::string router_ip_;
  std::string router6_;
  std::string subnet_;
  std::string pin_dir_;
  std::string cgroup_dir_;
  std::string tmp_dir_;
  std::vector<std::string> pod_netns_names_;
  std::vector<std::unique_ptr<Process>> processes_;
  int next_if_ = 1;
  bool node_ipv6_ = false;
};

// Removes namespaces, bpffs pin dirs, cgroups and processes of test runs: those whose pid is no
// longer alive, or every test run's when `all` is true (used after the whole suite).
Status sweepStale(bool all);

}  // namespace cilium::testing
