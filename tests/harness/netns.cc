// Topology built with iproute2 from the test process; nothing touches the root namespace's
// devices: every veth is created directly between the node and a pod namespace.
#include "tests/harness/netns.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/bpf/fs.h"

namespace cilium::testing {
namespace fs = std::filesystem;
namespace {

constexpr const char* kNetnsDir = "/run/netns";
constexpr const char* kBpfRoot = "/sys/fs/bpf";
constexpr const char* kCgroupRoot = "/sys/fs/cgroup/unified";

Status ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runChecked(argv);
  if (!r.ok()) return r.error();
  return okStatus();
}

Result<nlohmann::json> ipJson(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip", "-j"};
  argv.insert(argv.end(), args.begin(), args.end());
  CILIUM_ASSIGN_OR_RETURN(std::string out, runChecked(argv));
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    return makeError(ErrorCode::kInternal, "parse ip -j output: {}", e.what());
  }
}

bool pidAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// "cilt<pid>-..." -> pid, or -1.
pid_t ownerPid(const std::string& name) {
  constexpr std::string_view kPrefix = "cilt";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  size_t end = name.find('-', kPrefix.size());
  if (end == std::string::npos || end == kPrefix.size()) return -1;
  pid_t pid = 0;
  for (size_t i = kPrefix.size(); i < end; i++) {
    if (name[i] < '0' || name[i] > '9' || pid > 100000000) return -1;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

void killCgroupProcs(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->path().filename() != "cgroup.procs") continue;
    std::ifstream in(it->path());
    pid_t pid;
    while (in >> pid) ::kill(pid, SIGKILL);
  }
  std::ifstream in(dir / "cgroup.procs");
  pid_t pid;
  while (in >> pid) ::kill(pid, SIGKILL);
}

// cgroup directories must be removed leaf first, and only once empty of processes.
Status removeCgroup(const fs::path& dir) {
  killCgroupProcs(dir);
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_directory()) dirs.push_back(it->path());
  dirs.push_back(dir);
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return a.string().size() > b.string().size();
  });
  for (const auto& d : dirs) {
    for (int i = 0; i < 100 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; i++) ::usleep(10000);
  }
  if (fs::exists(dir))
    return makeError(ErrorCode::kInternal, "cgroup {} could not be removed", dir.string());
  return okStatus();
}

Status sysctl(const std::string& netns_path, const std::string& setting) {
  SpawnOptions opts;
  opts.netns = netns_path;
  auto r = runChecked({"sysctl", "-qw", setting}, opts);
  if (!r.ok()) return r.error();
  return okStatus();
}

Status deleteNetns(const std::string& name) {
  // Processes still inside (servers started by a killed test) keep the namespace alive: stop them.
  if (auto pids = runChecked({"ip", "netns", "pids", name}); pids.ok()) {
    std::istringstream in(*pids);
    pid_t pid;
    while (in >> pid) ::kill(pid, SIGKILL);
  }
  return ip({"netns", "del", name});
}

}  // namespace

Result<std::unique_ptr<Topology>> Topology::create(int subnet_octet) {
  static std::atomic<int> seq{0};
  std::unique_ptr<Topology> t(new Topology());
  t->prefix_ = fmt::format("cilt{}-{}", ::getpid(), seq++);
  t->tmp_dir_ = "/tmp/" + t->prefix_;
  std::error_code ec;
  fs::create_directories(t->tmp_dir_, ec);
  if (ec) return makeError(ErrorCode::kInternal, "create {}: {}", t->tmp_dir_, ec.message());
  CILIUM_RETURN_IF_ERROR(t->setupNode(subnet_octet));
  return t;
}

Status Topology::setupNode(int subnet_octet) {
  std::string node = prefix_ + "-node";
  CILIUM_RETURN_IF_ERROR(ip({"netns", "add", node}));
  pod_netns_names_.push_back(node);
  node_netns_ = std::string(kNetnsDir) + "/" + node;
  router_ip_ = fmt::format("10.{}.0.1", subnet_octet);
  router6_ = fmt::format("fd00:{}::1", subnet_octet);
  subnet_ = fmt::format("10.{}.0.0/16", subnet_octet);
  CILIUM_RETURN_IF_ERROR(ip({"-n", node, "link", "set", "lo", "up"}));
  // Forwarding inside the node namespace only; the machine's own ip_forward is untouched.
  CILIUM_RETURN_IF_ERROR(sysctl(node_netns_, "net.ipv4.ip_forward=1"));
  // IPv4 only for now: without IPv6 the devices send nothing on their own (no RS, DAD or MLD).
  CILIUM_RETURN_IF_ERROR(sysctl(node_netns_, "net.ipv6.conf.all.disable_ipv6=1"));
  CILIUM_RETURN_IF_ERROR(sysctl(node_netns_, "net.ipv6.conf.default.disable_ipv6=1"));
  return okStatus();
}

Status Topology::enableNodeIpv6() {
  for (const char* s : {"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                        "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
                        "net.ipv6.conf.lo.disable_ipv6=0"})
    CILIUM_RETURN_IF_ERROR(sysctl(node_netns_, s));
  node_ipv6_ = true;
  return okStatus();
}

Topology::~Topology() {
  processes_.clear();  // stops them before their namespaces go
  for (auto it = pod_netns_names_.rbegin(); it != pod_netns_names_.rend(); ++it)
    (void)deleteNetns(*it);
  if (!pin_dir_.empty()) (void)bpf::removePinDir(pin_dir_);
  if (!cgroup_dir_.empty()) (void)removeCgroup(cgroup_dir_);
  std::error_code ec;
  if (!std::getenv("CILIUM_TEST_KEEP_TMP")) fs::remove_all(tmp_dir_, ec);
}

Result<std::string> Topology::pinDir() {
  if (pin_dir_.empty()) {
    std::string dir = std::string(kBpfRoot) + "/" + prefix_;
    CILIUM_RETURN_IF_ERROR(bpf::makePinDir(dir));
    pin_dir_ = dir;
  }
  return pin_dir_;
}

Result<std::string> Topology::cgroupDir() {
  if (cgroup_dir_.empty()) {
    std::string dir = std::string(kCgroupRoot) + "/" + prefix_;
    if (::mkdir(dir.c_str(), 0755) != 0) return errnoError(errno, "mkdir " + dir);
    cgroup_dir_ = dir;
  }
  return cgroup_dir_;
}

Result<Pod> Topology::addPod(std::string_view name, std::string_view pod_ip,
                             std::string_view pod_ip6) {
  Pod pod;
  pod.name = name;
  pod.ip = pod_ip;
  pod.ip6 = pod_ip6;
  std::string ns = prefix_ + "-" + std::string(name);
  CILIUM_RETURN_IF_ERROR(ip({"netns", "add", ns}));
  pod_netns_names_.push_back(ns);
  pod.netns = std::string(kNetnsDir) + "/" + ns;
  std::string node = prefix_ + "-node";
  pod.host_ifname = fmt::format("lxc{}", next_if_++);
  CILIUM_RETURN_IF_ERROR(ip({"-n", node, "link", "add", pod.host_ifname, "type", "veth", "peer",
                             "name", "eth0", "netns", ns}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", node, "link", "set", pod.host_ifname, "up"}));
  // The router address on every host-side veth answers the pods' ARP for their gateway.
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", node, "addr", "add", router_ip_ + "/32", "dev", pod.host_ifname}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", node, "route", "add", pod.ip + "/32", "dev", pod.host_ifname}));
  CILIUM_RETURN_IF_ERROR(ip({"-n", ns, "link", "set", "lo", "up"}));
  if (pod.ip6.empty())
    CILIUM_RETURN_IF_ERROR(sysctl(pod.netns, "net.ipv6.conf.all.disable_ipv6=1"));
  CILIUM_RETURN_IF_ERROR(ip({"-n", ns, "link", "set", "eth0", "up"}));
  if (!pod.ip6.empty()) {
    CILIUM_RETURN_IF_ERROR(
        ip({"-n", ns, "-6", "addr", "add", pod.ip6 + "/128", "dev", "eth0", "nodad"}));
    CILIUM_RETURN_IF_ERROR(ip({"-n", ns, "-6", "route", "add", router6_ + "/128", "dev", "eth0"}));
    CILIUM_RETURN_IF_ERROR(
        ip({"-n", ns, "-6", "route", "add", "default", "via", router6_, "dev", "eth0"}));
    if (node_ipv6_)
      CILIUM_RETURN_IF_ERROR(
          ip({"-n", node, "-6", "route", "add", pod.ip6 + "/128", "dev", pod.host_ifname}));
  }
  CILIUM_RETURN_IF_ERROR(ip({"-n", ns, "addr", "add", pod.ip + "/32", "dev", "eth0"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", ns, "route", "add", router_ip_ + "/32", "dev", "eth0", "scope", "link"}));
  CILIUM_RETURN_IF_ERROR(
      ip({"-n", ns, "route", "add", "default", "via", router_ip_, "dev", "eth0"}));

  CILIUM_ASSIGN_OR_RETURN(auto host, ipJson({"-n", node, "link", "show", pod.host_ifname}));
  CILIUM_ASSIGN_OR_RETURN(auto peer, ipJson({"-n", ns, "link", "show", "eth0"}));
  if (!host.is_array() || host.empty() || !peer.is_array() || peer.empty())
    return Error(ErrorCode::kInternal, "ip -j link show returned nothing");
  pod.host_ifindex = host[0].value("ifindex", 0);
  pod.host_mac = host[0].value("address", "");
  pod.mac = peer[0].value("address", "");
  return pod;
}

Status Topology::removePod(const Pod& pod) {
  std::string ns = pod.netns.substr(std::string(kNetnsDir).size() + 1);
  CILIUM_RETURN_IF_ERROR(deleteNetns(ns));  // deleting the namespace deletes the veth pair
  std::erase(pod_netns_names_, ns);
  return okStatus();
}

Result<RunOutput> Topology::exec(const std::string& netns, const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout) {
  SpawnOptions opts;
  opts.netns = netns;
  return run(argv, opts, timeout);
}

Result<Process*> Topology::spawnIn(const std::string& netns, const std::vector<std::string>& argv,
                                   const std::string& log_name) {
  SpawnOptions opts;
  opts.netns = netns;
  if (!log_name.empty()) {
    opts.stdout_path = tmp_dir_ + "/" + log_name + ".out";
    opts.stderr_path = tmp_dir_ + "/" + log_name + ".err";
  }
  CILIUM_ASSIGN_OR_RETURN(Process p, spawn(argv, opts));
  processes_.push_back(std::make_unique<Process>(std::move(p)));
  return processes_.back().get();
}

Status sweepStale(bool all) {
  auto stale = [&](const std::string& name) {
    pid_t pid = ownerPid(name);
    return pid > 0 && (all || !pidAlive(pid));
  };
  std::error_code ec;
  std::vector<std::string> failures;
  if (fs::exists(kNetnsDir, ec)) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(kNetnsDir, ec))
      if (stale(e.path().filename())) names.push_back(e.path().filename());
    // Pods before nodes does not matter: deleting any namespace removes its veth ends.
    // Another process may remove an item at the same time (its own test ending): what is gone
    // is not a failure.
    for (const auto& n : names)
      if (auto s = deleteNetns(n); !s.ok() && fs::exists(fs::path(kNetnsDir) / n, ec))
        failures.push_back(s.error().message());
  }
  for (const char* root : {kBpfRoot, kCgroupRoot, "/tmp"}) {
    if (!fs::exists(root, ec)) continue;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      if (!stale(e.path().filename())) continue;
      if (std::string(root) == kCgroupRoot) {
        if (Status s = removeCgroup(e.path()); !s.ok() && fs::exists(e.path(), ec))
          failures.push_back(s.error().message());
      } else if (fs::remove_all(e.path(), ec); ec && fs::exists(e.path())) {
        failures.push_back(e.path().string() + ": " + ec.message());
      }
    }
  }
  if (!failures.empty())
    return makeError(ErrorCode::kInternal, "sweep left {} item(s): {}", failures.size(),
                     failures[0]);
  return okStatus();
}

}  // namespace cilium::testing
