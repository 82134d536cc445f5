// e2e tier: the OCI images of deploy/images, built by scripts/build-images.sh from this build's
// binaries in a network namespace with no network at all, imported into a private containerd
// and run: every binary of every image answers; the agent image's init-container helpers mount
// bpffs and cgroup2 (in the container, and in the host's mount namespace as Cilium's
// mount-cgroup does) and install cilium-cni; and the agent image runs for real on the host
// network of a test-made node namespace, unprivileged with exactly the chart's capabilities and
// the default seccomp profile, with its own bpffs pin dir and cgroup and the host's /proc/sys/net
// as its procfs, pins its maps, writes a sysctl and its CNI conflist, reports healthy through
// cilium-dbg (the host's and the image's) and wires pods that talk through its datapath.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "agent/common/yaml.h"
#include "tests/harness/agent_node.h"
#include "tests/harness/containerd.h"
#include "tests/harness/eventually.h"
#include "tests/harness/netns.h"
#include "tests/harness/sockets.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr char kRegistry[] = "quay.io/cilium-cpp";

bool requirePrivileged() {
  const char* v = std::getenv("CILIUM_TEST_REQUIRE_PRIVILEGED");
  return v != nullptr && std::string(v) == "1";
}

std::string missingTools() {
  std::string missing = testing::missingContainerd();
  for (const char* path : {"/usr/bin/buildah", "/bin/busybox", "/usr/bin/unshare"})
    if (::access(path, X_OK) != 0) missing += std::string(missing.empty() ? "" : ", ") + path;
  return missing;
}

std::string ref(const std::string& image) {
  return std::string(kRegistry) + "/" + image + ":" + CILIUM_VERSION;
}

std::string describe(const Result<RunOutput>& r) {
  if (!r.ok()) return r.error().toString();
  return "exit " + std::to_string(r->exit_code) + "\nstdout:\n" + r->out + "\nstderr:\n" + r->err;
}

// Mount points (field 5 of mountinfo) with their filesystem type, as `pid` sees them.
std::vector<std::pair<std::string, std::string>> mountsOf(const std::string& mountinfo) {
  std::vector<std::pair<std::string, std::string>> mounts;
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::vector<std::string> fields;
    for (std::string w; f >> w;) fields.push_back(w);
    for (size_t i = 6; i + 1 < fields.size(); i++)
      if (fields[i] == "-") {
        mounts.emplace_back(fields[4], fields[i + 1]);
        break;
      }
  }
  return mounts;
}

bool mounted(const std::string& mountinfo, const std::string& point, const std::string& type) {
  for (const auto& [p, t] : mountsOf(mountinfo))
    if (p == point && t == type) return true;
  return false;
}

// A capability list of the chart's values.yaml (securityContext.capabilities.<name>), as the
// chart renders it: names without CAP_.
std::vector<std::string> chartCapabilities(const std::string& name) {
  auto docs = yaml::toJson(
      readFile(std::string(CILIUM_SOURCE_DIR) + "/deploy/helm/cilium/values.yaml").valueOr(""));
  std::vector<std::string> caps;
  if (!docs.ok() || docs->empty()) return caps;
  auto list = (*docs)[0]["securityContext"]["capabilities"][name];
  if (list.is_array())
    for (const auto& c : list) caps.push_back(c.get<std::string>());
  return caps;
}

// ctr run flags for a container with exactly `caps` (Kubernetes' `add: caps, drop: [ALL]`):
// ctr 1.6 cannot drop ALL, so each of containerd's default capabilities not in `caps` is
// dropped by name (the test checks the result in /proc/<pid>/status).
std::vector<std::string> capabilityFlags(const std::vector<std::string>& caps) {
  static const char* kContainerdDefaults[] = {
      "CHOWN",   "DAC_OVERRIDE", "FSETID",           "FOWNER",
      "MKNOD",   "NET_RAW",      "SETGID",           "SETUID",
      "SETFCAP", "SETPCAP",      "NET_BIND_SERVICE", "SYS_CHROOT",
      "KILL",    "AUDIT_WRITE"};
  std::vector<std::string> flags;
  for (const auto& c : caps) flags.insert(flags.end(), {"--cap-add", "CAP_" + c});
  for (const char* c : kContainerdDefaults)
    if (std::find(caps.begin(), caps.end(), c) == caps.end())
      flags.insert(flags.end(), {"--cap-drop", std::string("CAP_") + c});
  return flags;
}

// The capability bits of `names` (linux/capability.h numbers), as /proc/<pid>/status shows them.
uint64_t capabilityMask(const std::vector<std::string>& names) {
  static const std::vector<std::pair<std::string, int>> kNumbers = {
      {"CHOWN", 0},         {"DAC_OVERRIDE", 1}, {"FOWNER", 3},
      {"FSETID", 4},        {"KILL", 5},         {"SETGID", 6},
      {"SETUID", 7},        {"SETPCAP", 8},      {"NET_BIND_SERVICE", 10},
      {"NET_RAW", 13},      {"NET_ADMIN", 12},   {"IPC_LOCK", 14},
      {"SYS_CHROOT", 18},   {"SYS_PTRACE", 19},  {"SYS_ADMIN", 21},
      {"SYS_RESOURCE", 24}, {"MKNOD", 27},       {"AUDIT_WRITE", 29},
      {"SETFCAP", 31},      {"PERFMON", 38},     {"BPF", 39}};
  uint64_t mask = 0;
  for (const auto& n : names) {
    auto it = std::find_if(kNumbers.begin(), kNumbers.end(), [&](auto& p) { return p.first == n; });
    if (it == kNumbers.end()) return ~0ull;  // unknown: never equal to a real set
    mask |= 1ull << it->second;
  }
  return mask;
}

// A line "<field>:\t<hex>" of /proc/<pid>/status as a number (~0 when absent).
uint64_t statusHex(const std::string& status, const std::string& field) {
  auto at = status.find("\n" + field + ":\t");
  if (at == std::string::npos) return ~0ull;
  return std::stoull(status.substr(at + field.size() + 3, 16), nullptr, 16);
}

class ImagesE2eTest : public testing::AgentNodeTest {
 protected:
  ImagesE2eTest() : AgentNodeTest(CILIUM_AGENT_BINARY) {}

  // The images are built once for the suite (about a minute on two busy cores), in a scratch
  // directory named like the harness's so that a sweep removes it after a killed run.
  static void SetUpTestSuite() {
    if (!missingTools().empty()) return;
    images_dir_ = "/tmp/cilt" + std::to_string(::getpid()) + "-images";
    fs::create_directories(images_dir_ + "/tmp");
    SpawnOptions o;
    o.extra_env = {"TMPDIR=" + images_dir_ + "/tmp"};
    // unshare --net: a network namespace of its own with only a loopback that is down, so the
    // build cannot reach a registry or anything else.
    build_ = std::make_unique<Result<RunOutput>>(
        run({"/usr/bin/unshare", "--net", "--",
             std::string(CILIUM_SOURCE_DIR) + "/scripts/build-images.sh", "--build-dir",
             CILIUM_BUILD_DIR, "--out", images_dir_ + "/out"},
            o, 600s));
  }

  static void TearDownTestSuite() {
    build_.reset();
    std::error_code ec;
    if (!images_dir_.empty() && !std::getenv("CILIUM_TEST_KEEP_TMP"))
      fs::remove_all(images_dir_, ec);
  }

  void SetUp() override {
    if (auto missing = missingTools(); !missing.empty()) {
      if (requirePrivileged())
        GTEST_FAIL() << "images test required but missing " << missing
                     << " (run scripts/install-deps.sh)";
      GTEST_SKIP() << "buildah, busybox-static, containerd or runc is not installed (" << missing
                   << "); run scripts/install-deps.sh";
    }
    ASSERT_TRUE(build_ && build_->ok() && (*build_)->exit_code == 0)
        << "scripts/build-images.sh: " << (build_ ? describe(*build_) : "not run");
    AgentNodeTest::SetUp();
    if (HasFatalFailure()) return;
    auto c = testing::Containerd::start(
        {dir_ + "/ctrd", topo_->nodeNetns(), "/" + topo_->prefix() + "-ctr", ""});
    ASSERT_TRUE(c.ok()) << c.error().toString();
    containerd_ = std::move(*c);
    for (const char* image : {"cilium", "operator", "hubble-relay", "hubble-ui"}) {
      auto imported =
          containerd_->ctr({"images", "import", images_dir_ + "/out/" + image + ".tar"});
      ASSERT_TRUE(imported.ok() && imported->exit_code == 0) << describe(imported);
    }
  }

  void TearDown() override {
    for (const auto& id : containers_) {
      (void)containerd_->ctr({"tasks", "kill", "-s", "SIGKILL", id}, 10s);
      (void)containerd_->ctr({"tasks", "delete", "-f", id}, 20s);
      (void)containerd_->ctr({"containers", "delete", id}, 20s);
    }
    for (const auto& m : host_mounts_) ::umount2(m.c_str(), MNT_DETACH);
    for (const auto& ns : netns_) (void)run({"ip", "netns", "del", ns});
    containerd_.reset();  // stops it and removes what its shims and containers left
  }

  // `ctr run --rm` of `image` with `argv` and the extra ctr flags, to completion. `out` is
  // what the container wrote to stdout and stderr, from the file the shim writes (complete once
  // ctr has deleted the task; ctr's own stdio copy can lose the tail on a busy machine), `err`
  // is ctr's.
  Result<RunOutput> runIn(const std::string& image, const std::vector<std::string>& argv,
                          const std::vector<std::string>& flags = {}) {
    std::string id = topo_->prefix() + "-" + std::to_string(runs_++);
    std::string log = dir_ + "/" + id + ".log";
    std::vector<std::string> args = {"run", "--rm", "--log-uri", "file://" + log};
    auto own = containerd_->runArgs(id);
    args.insert(args.end(), own.begin(), own.end());
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(ref(image));
    args.push_back(id);
    args.insert(args.end(), argv.begin(), argv.end());
    auto r = containerd_->ctr(args, 60s);
    if (!r.ok()) return r;
    // The shim copies the container's output into the log file on its own: `ctr run` may
    // return before the copy is done. Every command run here prints something, so wait for
    // the file to have content and then to stop growing.
    auto size = [&] {
      std::error_code ec;
      auto n = fs::file_size(log, ec);
      return ec ? uintmax_t{0} : n;
    };
    testing::eventually([&] { return size() > 0; }, 10s);
    testing::eventually(
        [&, last = uintmax_t{0}]() mutable {
          uintmax_t now = size();
          bool stable = now == last;
          last = now;
          return stable;
        },
        2s, 100ms);
    r->out = readFile(log).valueOr("");
    return r;
  }

  static std::string bind(const std::string& src, const std::string& dst) {
    return "type=bind,src=" + src + ",dst=" + dst + ",options=rbind:rw";
  }

  static inline std::string images_dir_;
  static inline std::unique_ptr<Result<RunOutput>> build_;
  std::unique_ptr<testing::Containerd> containerd_;
  std::vector<std::string> containers_;  // started detached, removed at the end
  std::vector<std::string> host_mounts_;
  std::vector<std::string> netns_;  // pod sandboxes (ip netns names), removed at the end
  int runs_ = 0;
};

TEST_F(ImagesE2eTest, ImagesAreNamedAsTheChartExpectsAndEveryBinaryRuns) {
  auto list = containerd_->ctr({"images", "list", "-q"});
  ASSERT_TRUE(list.ok() && list->exit_code == 0) << describe(list);
  for (const char* image : {"cilium", "operator", "hubble-relay", "hubble-ui"})
    EXPECT_NE(list->out.find(ref(image) + "\n"), std::string::npos) << list->out;

  struct Case {
    std::string image;
    std::vector<std::string> argv;
    std::string expect;  // in stdout
  };
  const std::string v = CILIUM_VERSION;
  std::vector<Case> cases = {
      {"cilium", {"cilium-agent", "--version"}, "cilium-agent " + v},
      {"cilium", {"cilium-cni", "--version"}, "cilium-cni " + v},
      {"cilium", {"cilium-dbg", "--help"}, "Usage: cilium-dbg"},
      {"cilium", {"cilium-health", "--help"}, "Usage: cilium-health"},
      {"cilium", {"hubble", "version"}, v},
      {"cilium", {"nsenter", "--version"}, "nsenter from util-linux"},
      {"cilium", {"cilium-proxy", "--help"}, "Usage: cilium-proxy"},
      {"cilium", {"sh", "-c", "echo shell ok"}, "shell ok"},
      {"operator", {"cilium-operator", "--version"}, "cilium-operator " + v},
      {"hubble-relay", {"hubble-relay", "--help"}, "Usage: hubble-relay"},
      {"hubble-relay", {"hubble", "version"}, v},
      {"hubble-ui", {"hubble-ui", "--help"}, "Usage: hubble-ui"},
  };
  for (const auto& c : cases) {
    auto r = runIn(c.image, c.argv);
    ASSERT_TRUE(r.ok()) << r.error().toString();
    EXPECT_EQ(r->exit_code, 0) << c.image << " " << c.argv[0] << ": " << describe(r);
    EXPECT_NE(r->out.find(c.expect), std::string::npos)
        << c.image << " " << c.argv[0] << ": " << describe(r);
  }
  // Without arguments each image runs its entrypoint: the operator's, refused for a flag it
  // does not know, proves the entrypoint and its libraries load.
  auto r = runIn("operator", {"/usr/bin/cilium-operator", "--no-such-flag"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2) << describe(r);
}

TEST_F(ImagesE2eTest, InitHelpersMountBpffsAndCgroup2AndInstallTheCniPlugin) {
  // In the container's own mount namespace (Bidirectional propagation in a real pod), each
  // helper twice: the second run finds the mount and leaves it.
  std::string cni_dir = dir_ + "/host-cni-bin";
  fs::create_directories(cni_dir);
  auto r = runIn("cilium",
                 {"sh", "-c",
                  "cilium-install-cni && cilium-mount-bpffs /run/t/bpf && cilium-mount-bpffs "
                  "/run/t/bpf && cilium-mount-cgroup2 /run/t/cg && cilium-mount-cgroup2 /run/t/cg "
                  "&& cat /proc/self/mountinfo"},
                 {"--privileged", "--mount", bind(cni_dir, "/host/opt/cni/bin")});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << describe(r);
  EXPECT_NE(r->out.find("cilium-install-cni: installed /host/opt/cni/bin/cilium-cni"),
            std::string::npos)
      << r->out;
  EXPECT_NE(r->out.find("mounted a BPF filesystem at /run/t/bpf\n"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("a BPF filesystem is already mounted at /run/t/bpf"), std::string::npos)
      << r->out;
  EXPECT_NE(r->out.find("mounted cgroup2 at /run/t/cg\n"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("cgroup2 is already mounted at /run/t/cg"), std::string::npos) << r->out;
  EXPECT_TRUE(mounted(r->out, "/run/t/bpf", "bpf")) << r->out;
  EXPECT_TRUE(mounted(r->out, "/run/t/cg", "cgroup2")) << r->out;

  // The installed plugin is the image's and runs on the host as the runtime will run it.
  std::string plugin = cni_dir + "/cilium-cni";
  struct stat st {};
  ASSERT_EQ(::stat(plugin.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_FALSE(fs::exists(cni_dir + "/.cilium-cni.new"));
  auto version = run({plugin, "--version"});
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->exit_code, 0) << describe(version);
  EXPECT_NE(version->out.find(std::string("cilium-cni ") + CILIUM_VERSION), std::string::npos);

  // Without the host directory mounted, the installer says what is missing and fails. Its
  // message goes to a file of a mounted directory: the shim loses the output of a process that
  // exits at once now and then (containerd 1.6, busy machine).
  std::string out_dir = dir_ + "/missing-out";
  fs::create_directories(out_dir);
  auto missing =
      runIn("cilium", {"sh", "-c", "cilium-install-cni /host/opt/cni/bin >/out/log 2>&1"},
            {"--mount", bind(out_dir, "/out")});
  ASSERT_TRUE(missing.ok());
  std::string missing_log = readFile(out_dir + "/log").valueOr("");
  EXPECT_EQ(missing->exit_code, 1) << describe(missing) << missing_log;
  EXPECT_NE(missing_log.find("/host/opt/cni/bin is not a directory"), std::string::npos)
      << describe(missing) << missing_log;

  // HOST_PROC: Cilium's way, the cgroup2 mount made in the host's mount namespace through
  // busybox copied to a host directory, with exactly the chart's mount-cgroup capabilities. The
  // "host" mount point is a scratch directory; the namespaces entered are this test process's
  // (HOST_PID), which are the host's: the machine's own PID 1 is left alone.
  std::string host_bin = dir_ + "/host-bin", host_cg = dir_ + "/host-cgroup2";
  fs::create_directories(host_bin);
  host_mounts_.push_back(host_cg);
  auto mount_cgroup_caps = chartCapabilities("mountCgroup");
  ASSERT_FALSE(mount_cgroup_caps.empty());
  for (int i = 0; i < 2; i++) {
    std::vector<std::string> flags = capabilityFlags(mount_cgroup_caps);
    flags.insert(flags.end(),
                 {"--env", "HOST_PROC=/hostproc", "--env", "HOST_PID=" + std::to_string(::getpid()),
                  "--env", "BIN_PATH=" + host_bin, "--mount", bind("/proc", "/hostproc"), "--mount",
                  bind(host_bin, "/hostbin")});
    auto h = runIn("cilium", {"cilium-mount-cgroup2", host_cg}, flags);
    ASSERT_TRUE(h.ok());
    ASSERT_EQ(h->exit_code, 0) << describe(h);
    EXPECT_NE(h->out.find(i == 0 ? "mounted cgroup2 at " + host_cg + " (host)"
                                 : "cgroup2 is already mounted at " + host_cg + " (host)"),
              std::string::npos)
        << describe(h);
  }
  EXPECT_TRUE(mounted(readFile("/proc/self/mountinfo").valueOr(""), host_cg, "cgroup2"));
  EXPECT_TRUE(fs::exists(host_cg + "/cgroup.controllers"));
  EXPECT_TRUE(fs::exists(host_bin + "/busybox-cilium"));
}

TEST_F(ImagesE2eTest, AgentImageRunsWithTheChartsCapabilitiesAndProgramsTheDatapath) {
  const std::vector<std::string> caps = chartCapabilities("ciliumAgent");
  ASSERT_FALSE(caps.empty()) << "no securityContext.capabilities.ciliumAgent in values.yaml";
  auto pin_root = topo_->pinDir();
  ASSERT_TRUE(pin_root.ok()) << pin_root.error().toString();
  auto cgroup = topo_->cgroupDir();
  ASSERT_TRUE(cgroup.ok()) << cgroup.error().toString();
  std::string cni_conf = dir_ + "/host-cni-conf";
  fs::create_directories(cni_conf);
  fs::create_directories(node_->stateDir());

  // As the chart runs it: not privileged, exactly the chart's capabilities, the runtime's
  // default seccomp profile (what a pod with RuntimeDefault gets; the chart sets none, so this
  // is the stricter case); the node's bpffs at /sys/fs/bpf (here the test's pin directory), the
  // cgroup2 hierarchy at /run/cilium/cgroupv2 (here the test's cgroup), the host's
  // /proc/sys/net at /host/proc/sys/net with procfs /host/proc (the container's own /proc/sys
  // is read-only), the host's CNI config directory; the agent's state and socket directory at
  // the same path as on the host, so the test's cilium-dbg and cilium-cni reach the socket. Host
  // network: containerd runs in the node namespace, so the container shares it. The L7 proxy is
  // on, so the agent writes a sysctl (lo's accept_local) at start.
  std::string id = topo_->prefix() + "-agent";
  std::vector<std::string> args = {"run",        "-d",
                                   "--net-host", "--seccomp",
                                   "--log-uri",  "file://" + dir_ + "/agent-container.log"};
  auto cap_flags = capabilityFlags(caps);
  args.insert(args.end(), cap_flags.begin(), cap_flags.end());
  auto own = containerd_->runArgs(id);
  args.insert(args.end(), own.begin(), own.end());
  for (const auto& m :
       {bind(*pin_root, "/sys/fs/bpf"), bind(*cgroup, "/run/cilium/cgroupv2"),
        bind("/proc/sys/net", "/host/proc/sys/net"), bind(cni_conf, "/host/etc/cni/net.d"),
        bind(node_->stateDir(), node_->stateDir())}) {
    args.push_back("--mount");
    args.push_back(m);
  }
  args.insert(args.end(),
              {ref("cilium"), id, "cilium-agent", "--state-dir=" + node_->stateDir(),
               "--socket-path=" + sock_, "--bpf-pin-dir=/sys/fs/bpf/agent", "--node-name=node-1",
               "--ipv4-range=10.200.0.0/24", "--cgroup-root=/run/cilium/cgroupv2",
               "--procfs=/host/proc", "--enable-l7-proxy=true",
               "--write-cni-conf-when-ready=/host/etc/cni/net.d/05-cilium.conflist"});
  auto started = containerd_->ctr(args);
  ASSERT_TRUE(started.ok() && started->exit_code == 0) << describe(started);
  containers_.push_back(id);
  auto containerLog = [&] { return readFile(dir_ + "/agent-container.log").valueOr(""); };

  // /healthz through the host's cilium-dbg: what a readiness probe asks.
  Result<RunOutput> status = Result<RunOutput>(RunOutput{});
  bool ready = testing::eventually(
      [&] {
        status = run({CILIUM_DBG_BINARY, "-H", "unix://" + sock_, "status", "--brief"});
        return status.ok() && status->exit_code == 0;
      },
      60s, 100ms);
  ASSERT_TRUE(ready) << describe(status) << "\nagent:\n" << containerLog();
  EXPECT_EQ(status->out, "OK\n");

  // The image's own cilium-dbg, exec'd in the agent's container (its output into a file of the
  // shared state directory: ctr's stdio copy can lose the tail on a busy machine).
  std::string dbg_out = node_->stateDir() + "/dbg.out";
  auto exec = containerd_->ctr({"tasks", "exec", "--exec-id", "dbg", id, "sh", "-c",
                                "cilium-dbg -H unix://" + sock_ + " status >" + dbg_out + " 2>&1"});
  ASSERT_TRUE(exec.ok());
  std::string dbg = readFile(dbg_out).valueOr("");
  EXPECT_EQ(exec->exit_code, 0) << describe(exec) << dbg;
  EXPECT_NE(dbg.find("Cilium:"), std::string::npos) << dbg;
  EXPECT_NE(dbg.find("Ok"), std::string::npos) << dbg;

  // It runs in the node namespace, not the machine's: same network namespace inode.
  auto tasks = containerd_->ctr({"tasks", "list"});
  ASSERT_TRUE(tasks.ok());
  std::istringstream in(tasks->out);
  std::string line, pid;
  while (std::getline(in, line))
    if (line.rfind(id + " ", 0) == 0) {
      std::istringstream f(line);
      std::string name;
      f >> name >> pid;
    }
  ASSERT_FALSE(pid.empty()) << tasks->out;
  struct stat agent_ns {
  }, node_ns{};
  ASSERT_EQ(::stat(("/proc/" + pid + "/ns/net").c_str(), &agent_ns), 0);
  ASSERT_EQ(::stat(topo_->nodeNetns().c_str(), &node_ns), 0);
  EXPECT_EQ(agent_ns.st_ino, node_ns.st_ino);

  // Exactly the chart's capabilities, effective and bounding; seccomp filtering on.
  std::string proc_status = readFile("/proc/" + pid + "/status").valueOr("");
  EXPECT_EQ(statusHex(proc_status, "CapEff"), capabilityMask(caps)) << proc_status;
  EXPECT_EQ(statusHex(proc_status, "CapBnd"), capabilityMask(caps)) << proc_status;
  EXPECT_NE(proc_status.find("\nSeccomp:\t2\n"), std::string::npos) << proc_status;

  // The sysctl went to the node namespace through procfs, and the machine's stayed as it was.
  auto accept_local =
      topo_->exec(topo_->nodeNetns(), {"cat", "/proc/sys/net/ipv4/conf/lo/accept_local"});
  ASSERT_TRUE(accept_local.ok());
  EXPECT_EQ(accept_local->out, "1\n") << containerLog();

  // Pods through cilium-cni (as the runtime calls it, on the host) talk over the datapath the
  // containerized agent programs (tc on their veths, endpoint and policy maps).
  std::vector<std::string> pod_ips, host_ifindexes;
  for (const char* pod : {"pod-a", "pod-b"}) {
    std::string ns = topo_->prefix() + "-" + pod;
    auto made = run({"ip", "netns", "add", ns});
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << describe(made);
    netns_.push_back(ns);
    auto add = node_->cni(CILIUM_CNI_BINARY,
                          {"ADD", std::string("ctr-") + pod, "/run/netns/" + ns, "default", pod});
    ASSERT_TRUE(add.ok() && add->exit_code == 0)
        << describe(add) << readFile(dir_ + "/cni.log").valueOr("") << containerLog();
    auto result = nlohmann::json::parse(add->out, nullptr, false);
    ASSERT_TRUE(result.is_object() && result.contains("ips")) << add->out;
    std::string ip = result["ips"][0]["address"].get<std::string>();
    pod_ips.push_back(ip.substr(0, ip.find('/')));
    auto link = topo_->exec(topo_->nodeNetns(),
                            {"ip", "-j", "link", "show", "dev", result["interfaces"][0]["name"]});
    ASSERT_TRUE(link.ok() && link->exit_code == 0) << describe(link);
    auto parsed = nlohmann::json::parse(link->out, nullptr, false);
    ASSERT_TRUE(parsed.is_array() && !parsed.empty()) << link->out;
    host_ifindexes.push_back(std::to_string(parsed[0].value("ifindex", 0)));
  }
  auto listener = testing::listenTcp("/run/netns/" + netns_[1], pod_ips[1], 8080);
  ASSERT_TRUE(listener.ok()) << listener.error().toString();
  EXPECT_TRUE(testing::connectTcp("/run/netns/" + netns_[0], pod_ips[1], 8080, 2000ms).ok())
      << containerLog();
  // The programs on both pods' veths and the proxy redirect on lo, pinned as links.
  std::vector<std::string> links;
  std::error_code links_ec;
  for (const auto& e : fs::directory_iterator(*pin_root + "/agent/links", links_ec))
    links.push_back(e.path().filename());
  for (const auto& ifindex : host_ifindexes)
    for (const char* dir : {"ingress", "egress"})
      EXPECT_NE(std::find(links.begin(), links.end(), "lxc_" + ifindex + "_" + dir), links.end())
          << ifindex << " " << dir << ": " << nlohmann::json(links).dump();
  EXPECT_NE(std::find(links.begin(), links.end(), "proxy_lo_ingress"), links.end())
      << nlohmann::json(links).dump();

  // Its datapath state went where it was told: maps pinned in the test's pin directory, and
  // the conflist in the host's CNI directory, naming the plugin the image installs.
  std::error_code ec;
  std::vector<std::string> pinned;
  for (const auto& e : fs::directory_iterator(*pin_root + "/agent", ec))
    pinned.push_back(e.path().filename());
  EXPECT_NE(std::find(pinned.begin(), pinned.end(), "cilium_ipcache"), pinned.end())
      << "pinned: " << nlohmann::json(pinned).dump();
  auto conflist =
      nlohmann::json::parse(readFile(cni_conf + "/05-cilium.conflist").valueOr(""), nullptr, false);
  ASSERT_TRUE(conflist.is_object()) << containerLog();
  ASSERT_TRUE(conflist.contains("plugins") && conflist["plugins"].is_array());
  EXPECT_EQ(conflist["plugins"][0].value("type", ""), "cilium-cni") << conflist.dump();

  // SIGTERM, as the kubelet stops it: the agent exits cleanly.
  auto kill = containerd_->ctr({"tasks", "kill", "-s", "SIGTERM", id});
  ASSERT_TRUE(kill.ok() && kill->exit_code == 0) << describe(kill);
  EXPECT_TRUE(testing::eventually(
      [&] {
        auto t = containerd_->ctr({"tasks", "list"}, 10s);
        return t.ok() && t->out.find(id + " ") != std::string::npos &&
               t->out.find("STOPPED") != std::string::npos;
      },
      30s, 100ms))
      << containerLog();
  auto deleted = containerd_->ctr({"tasks", "delete", id});
  ASSERT_TRUE(deleted.ok() && deleted->exit_code == 0) << describe(deleted);
  auto removed = containerd_->ctr({"containers", "delete", id});
  ASSERT_TRUE(removed.ok() && removed->exit_code == 0) << describe(removed);
  containers_.clear();
}

}  // namespace
}  // namespace cilium
