// e2e tier: the OCI images of deploy/images, built by scripts/build-images.sh from this build's
// binaries in a network namespace with no network at all, imported into a private containerd
// and run: every binary of every image answers; the agent image's init-container helpers mount
// bpffs and cgroup2 (in the container, and in the host's mount namespace as Cilium's
// mount-cgroup does) and install cilium-cni; and the agent image runs for real on the host
// network of a test-made node namespace, unprivileged with exactly the chart's capabilities and
// the default seccomp profile, with its own bpffs pin dir and cgroup and the host's /proc/sys/net
// as its procfs, pins its maps, writes a sysctl and its CNI conflist, reports healthy through
// cilium-dbg (the host's and the image's) and wires pods that talk through its datapath. Then the
// agent image as the rendered chart starts it (the DaemonSet's command, args, env, volumes and
// capabilities, cilium-config as the kubelet mounts a ConfigMap), ready and wiring pods, and once
// per capability of the chart's list without it, to show each is needed.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/common/yaml.h"
#include "agent/k8s/resources.h"
#include "tests/fakes/fake_apiserver.h"
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

// A Secret's data value as the kubelet writes it into a volume (RFC 4648 base64).
Result<std::string> base64Decode(const std::string& in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    auto v = kAlphabet.find(c);
    if (v == std::string::npos) return Error(ErrorCode::kInvalidArgument, "not base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// The chart rendered by helm-template (Helm's engine) with `values`: every object, in order.
Result<std::vector<nlohmann::json>> renderChart(const std::vector<std::string>& values) {
  std::vector<std::string> argv = {CILIUM_HELM_TEMPLATE, "cilium",
                                   std::string(CILIUM_SOURCE_DIR) + "/deploy/helm/cilium",
                                   "--namespace", "kube-system"};
  for (const auto& v : values) argv.insert(argv.end(), {"--set", v});
  CILIUM_ASSIGN_OR_RETURN(auto out, runChecked(argv));
  return yaml::toJson(out);
}

const nlohmann::json* findObject(const std::vector<nlohmann::json>& objs, const std::string& kind,
                                 const std::string& name) {
  for (const auto& o : objs)
    if (o.value("kind", "") == kind && o["metadata"].value("name", "") == name) return &o;
  return nullptr;
}

// What the kubelet would start for the DaemonSet's cilium-agent container.
struct ChartAgent {
  std::vector<std::string> argv;  // command + args, $(VAR) expanded from env
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> caps;  // securityContext.capabilities.add (drop: ALL)
  nlohmann::json container, pod, config;
  std::vector<nlohmann::json> objects;
};

Result<ChartAgent> chartAgent(const std::vector<std::string>& values) {
  ChartAgent a;
  CILIUM_ASSIGN_OR_RETURN(a.objects, renderChart(values));
  const auto* ds = findObject(a.objects, "DaemonSet", "cilium");
  const auto* cm = findObject(a.objects, "ConfigMap", "cilium-config");
  if (ds == nullptr || cm == nullptr)
    return Error(ErrorCode::kNotFound, "no DaemonSet cilium or ConfigMap cilium-config rendered");
  a.pod = (*ds)["spec"]["template"]["spec"];
  a.config = (*cm)["data"];
  for (const auto& c : a.pod["containers"])
    if (c.value("name", "") == "cilium-agent") a.container = c;
  if (a.container.is_null()) return Error(ErrorCode::kNotFound, "no cilium-agent container");
  const auto& sc = a.container["securityContext"];
  if (sc.value("privileged", false) || sc["capabilities"]["drop"] != nlohmann::json{"ALL"})
    return Error(ErrorCode::kInvalidArgument,
                 "not the capability list this test runs: " + sc.dump());
  for (const auto& c : sc["capabilities"]["add"]) a.caps.push_back(c);
  // The environment as the kubelet builds it: the downward API for this node and namespace,
  // cilium-config keys, plain values.
  for (const auto& e : a.container.value("env", nlohmann::json::array())) {
    std::string name = e["name"], value;
    if (e.contains("value")) {
      value = e["value"];
    } else if (e["valueFrom"].contains("fieldRef")) {
      std::string f = e["valueFrom"]["fieldRef"]["fieldPath"];
      if (f == "spec.nodeName")
        value = "node-1";
      else if (f == "metadata.namespace")
        value = "kube-system";
      else
        return Error(ErrorCode::kUnimplemented, "env " + name + ": fieldRef " + f);
    } else if (e["valueFrom"].contains("configMapKeyRef")) {
      value = a.config.value(e["valueFrom"]["configMapKeyRef"].value("key", ""), "");
    } else {
      return Error(ErrorCode::kUnimplemented, "env " + name + ": " + e.dump());
    }
    a.env.emplace_back(name, value);
  }
  std::vector<std::string> argv = a.container["command"];
  for (const auto& arg : a.container.value("args", nlohmann::json::array())) argv.push_back(arg);
  for (auto arg : argv) {
    for (const auto& [k, v] : a.env)
      for (size_t at; (at = arg.find("$(" + k + ")")) != std::string::npos;)
        arg.replace(at, k.size() + 3, v);
    a.argv.push_back(arg);
  }
  return a;
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
    server_.stop();
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

  // Starts the chart's agent container (detached) as the kubelet would: the DaemonSet's
  // command, args and environment, its volumes at their mountPaths, host network (containerd runs
  // in the node namespace), not privileged with exactly `caps` and the runtime's default seccomp
  // profile (the chart sets none; RuntimeDefault is the stricter case). The host paths of its
  // hostPath volumes are this test's: the pin directory for the bpffs, its cgroup for the
  // cgroup2 root, scratch directories for /var/run/cilium and the CNI configuration; cilium-config
  // is written in the kubelet's ConfigMap layout (a timestamped directory, `..data`, one symlink
  // per key); projected Secrets from the rendered Secrets. A volume this test does not know fails
  // it, so a new mount in the chart is noticed here.
  // With `output_in_run_dir`, the agent's stdout and stderr go (through `sh -c exec`) to
  // <name>.out of the /var/run/cilium volume as well as nowhere else: the shim loses the tail of
  // a process that exits at once now and then (containerd 1.6, busy machine).
  Result<std::string> startChartAgent(const ChartAgent& a, const std::vector<std::string>& caps,
                                      const std::string& name, bool output_in_run_dir = false) {
    CILIUM_ASSIGN_OR_RETURN(auto pin_root, topo_->pinDir());
    CILIUM_ASSIGN_OR_RETURN(auto cgroup, topo_->cgroupDir());
    // On a node cgroup.hostRoot (/run/cilium/cgroupv2) lies inside /run/cilium, which is the
    // agent's /var/run/cilium volume: the runtime mounts that (a recursive bind) after the
    // cilium-cgroup volume at the same depth, hiding it, and the recursive bind brings the
    // host's cgroup2 mount back in its place. The test's "host" has the same layout: its cgroup
    // bind-mounted at cgroupv2 inside the directory that stands for /var/run/cilium.
    std::string cgroup_at = node_->stateDir() + "/cgroupv2";
    if (std::find(host_mounts_.begin(), host_mounts_.end(), cgroup_at) == host_mounts_.end()) {
      fs::create_directories(cgroup_at);
      if (::mount(cgroup.c_str(), cgroup_at.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return errnoError(errno, "bind " + cgroup + " at " + cgroup_at);
      host_mounts_.push_back(cgroup_at);
    }
    const std::map<std::string, std::string> host_paths = {
        {"/sys/fs/bpf", pin_root},
        {"/run/cilium/cgroupv2", cgroup_at},
        {"/proc/sys/net", "/proc/sys/net"},  // resolved in the reader's netns: the node's
        {"/var/run/cilium", node_->stateDir()},
        {"/etc/cni/net.d", dir_ + "/" + name + "-cni-conf"},
    };
    std::vector<std::string> args = {"run",        "-d",
                                     "--net-host", "--seccomp",
                                     "--log-uri",  "file://" + dir_ + "/" + name + ".log"};
    auto cap_flags = capabilityFlags(caps);
    args.insert(args.end(), cap_flags.begin(), cap_flags.end());
    std::string id = topo_->prefix() + "-" + name;
    auto own = containerd_->runArgs(id);
    args.insert(args.end(), own.begin(), own.end());
    for (const auto& [k, v] : a.env) args.insert(args.end(), {"--env", k + "=" + v});
    for (const auto& m : a.container.value("volumeMounts", nlohmann::json::array())) {
      const nlohmann::json* vol = nullptr;
      for (const auto& v : a.pod["volumes"])
        if (v["name"] == m["name"]) vol = &v;
      if (vol == nullptr) return Error(ErrorCode::kNotFound, "no volume " + m["name"].dump());
      std::string src;
      if (vol->contains("hostPath")) {
        auto it = host_paths.find((*vol)["hostPath"]["path"]);
        if (it == host_paths.end())
          return Error(ErrorCode::kUnimplemented,
                       "hostPath this test does not map: " + vol->dump());
        src = it->second;
        fs::create_directories(src);
      } else if (vol->contains("configMap") && (*vol)["configMap"]["name"] == "cilium-config") {
        src = dir_ + "/" + name + "-config-map";
        const std::string ts = "..2026_12_07_06_00_00.000000001";
        fs::create_directories(src + "/" + ts);
        for (const auto& [key, value] : a.config.items()) {
          std::ofstream(src + "/" + ts + "/" + key) << value.get<std::string>();
          fs::create_symlink("..data/" + key, src + "/" + key);
        }
        fs::create_directory_symlink(ts, src + "/..data");
      } else if (vol->contains("projected")) {
        src = dir_ + "/" + name + "-" + m["name"].get<std::string>();
        fs::create_directories(src);
        for (const auto& source : (*vol)["projected"]["sources"]) {
          const auto* secret = findObject(a.objects, "Secret", source["secret"]["name"]);
          if (secret == nullptr) continue;  // optional: absent, as the kubelet leaves it
          for (const auto& item : source["secret"]["items"]) {
            auto data = base64Decode((*secret)["data"].value(item["key"].get<std::string>(), ""));
            if (!data.ok()) return data.error().withContext("Secret " + source.dump());
            std::ofstream(src + "/" + item["path"].get<std::string>()) << *data;
          }
        }
      } else {
        return Error(ErrorCode::kUnimplemented, "volume this test does not mount: " + vol->dump());
      }
      args.insert(args.end(),
                  {"--mount", "type=bind,src=" + src + ",dst=" + m["mountPath"].get<std::string>() +
                                  ",options=rbind:" + (m.value("readOnly", false) ? "ro" : "rw")});
    }
    args.push_back(ref("cilium"));
    args.push_back(id);
    if (output_in_run_dir)
      args.insert(args.end(),
                  {"sh", "-c", "exec \"$0\" \"$@\" >/var/run/cilium/" + name + ".out 2>&1"});
    args.insert(args.end(), a.argv.begin(), a.argv.end());
    CILIUM_ASSIGN_OR_RETURN(auto started, containerd_->ctr(args));
    if (started.exit_code != 0) return Error(ErrorCode::kInternal, describe(started));
    containers_.push_back(id);
    return id;
  }

  // The startup probe's GET http://127.0.0.1:<port>/healthz, in the node namespace.
  bool probeHealthy(const ChartAgent& a) {
    const auto& get = a.container["startupProbe"]["httpGet"];
    std::string url = "http://" + get.value("host", "127.0.0.1") + ":" +
                      std::to_string(get.value("port", 0)) + get.value("path", "/");
    auto r = topo_->exec(topo_->nodeNetns(), {"curl", "-sf", "-m", "2", "-o", "/dev/null", url});
    return r.ok() && r->exit_code == 0;
  }

  // The task's status in `ctr tasks list` (RUNNING, STOPPED, ...), "" when there is none.
  std::string taskStatus(const std::string& id) {
    auto t = containerd_->ctr({"tasks", "list"}, 10s);
    if (!t.ok()) return "";
    std::istringstream in(t->out);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(id + " ", 0) == 0) {
        std::istringstream f(line);
        std::string name, pid, status;
        f >> name >> pid >> status;
        return status;
      }
    return "";
  }

  // The fake apiserver on the node namespace's loopback, where the host-network containers run.
  void startApiServer() {
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&] { return server_.start(); }).ok());
  }

  // A pod of the API server, as the scheduler and kubelet would have it before the runtime
  // calls cilium-cni.
  void createPod(const std::string& name) {
    nlohmann::json pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{"app", name}}}}},
        {"spec", {{"nodeName", "node-1"}}}};
    ASSERT_TRUE(server_.create(k8s::Resource<k8s::Pod>::info(), pod).ok());
  }

  testing::FakeApiServer server_;
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

// What a local run needs beyond the chart's defaults, set through the chart's own values:
// - extraConfig.k8s-api-server: the test's fake apiserver (plain HTTP on the node namespace's
//   loopback). In a cluster the kubelet gives the pod KUBERNETES_SERVICE_HOST/PORT and a service
//   account token for the in-cluster HTTPS configuration; neither exists here.
// - extraConfig.ipv4-range: this node's pod CIDR, as no cilium-operator runs here to write one
//   into its CiliumNode (cluster-pool IPAM; the agent waiting for the operator's CIDR is
//   e2e_cluster's).
std::vector<std::string> localValues(const std::string& api_server) {
  return {"extraConfig.k8s-api-server=" + api_server, "extraConfig.ipv4-range=10.200.0.0/24"};
}

bool helmTemplateBuilt() { return ::access(CILIUM_HELM_TEMPLATE, X_OK) == 0; }

TEST_F(ImagesE2eTest, AgentImageRunsAsTheRenderedChartSaysAndPodsTalk) {
  if (!helmTemplateBuilt()) GTEST_SKIP() << "helm-template is not built (golang-go)";
  startApiServer();
  auto a = chartAgent(localValues(server_.url()));
  ASSERT_TRUE(a.ok()) << a.error().toString();
  ASSERT_FALSE(a->caps.empty());
  auto id = startChartAgent(*a, a->caps, "agent");
  ASSERT_TRUE(id.ok()) << id.error().toString();
  auto log = [&] { return readFile(dir_ + "/agent.log").valueOr(""); };

  // Ready as the kubelet's startup probe sees it; every rendered argument and key was accepted
  // (an unknown flag or a bad value stops the agent at start).
  ASSERT_TRUE(testing::eventually([&] { return probeHealthy(*a) || taskStatus(*id) == "STOPPED"; },
                                  90s, 200ms))
      << log();
  ASSERT_TRUE(probeHealthy(*a)) << "status " << taskStatus(*id) << "\n" << log();

  // The configuration came from the mounted ConfigMap: the datapath it describes (a VXLAN
  // tunnel, maps pinned under bpf-root), the CNI conflist where write-cni-conf-when-ready says,
  // Hubble on hubble-listen-address with the chart's certificate; the operator's keys ignored.
  EXPECT_EQ(a->config.value("routing-mode", ""), "tunnel");
  auto vxlan = topo_->exec(topo_->nodeNetns(), {"ip", "-d", "link", "show", "cilium_vxlan"});
  ASSERT_TRUE(vxlan.ok());
  EXPECT_EQ(vxlan->exit_code, 0) << describe(vxlan) << log();
  auto pin_root = topo_->pinDir();
  ASSERT_TRUE(pin_root.ok());
  EXPECT_TRUE(fs::exists(*pin_root + "/cilium/cilium_ipcache")) << log();
  // cgroup-root: the socket load balancer attached to the cgroup2 hierarchy it names
  EXPECT_TRUE(fs::exists(*pin_root + "/cilium/links/sock_connect4")) << log();
  std::string conflist_path = a->config.value("write-cni-conf-when-ready", "");
  ASSERT_EQ(conflist_path.rfind("/host/etc/cni/net.d/", 0), 0u) << conflist_path;
  auto conflist = nlohmann::json::parse(
      readFile(dir_ + "/agent-cni-conf/" + fs::path(conflist_path).filename().string()).valueOr(""),
      nullptr, false);
  ASSERT_TRUE(conflist.is_object()) << log();
  EXPECT_EQ(conflist["plugins"][0].value("type", ""), "cilium-cni") << conflist.dump();
  std::string hubble = a->config.value("hubble-listen-address", "");
  ASSERT_EQ(hubble, ":4244");
  EXPECT_TRUE(testing::eventually(
      [&] { return testing::connectTcp(topo_->nodeNetns(), "127.0.0.1", 4244, 500ms).ok(); }, 20s))
      << log();
  auto config = run({CILIUM_DBG_BINARY, "-H", "unix://" + sock_, "config"});
  ASSERT_TRUE(config.ok());
  EXPECT_NE(config->out.find("leader-election-lease-duration"), std::string::npos)
      << describe(config);

  // Pods through cilium-cni (as the runtime calls it on the host) talk over the datapath the
  // agent programs on their veths.
  std::vector<std::string> pod_ips, host_ifindexes;
  for (const char* pod : {"pod-a", "pod-b"}) {
    createPod(pod);
    std::string ns = topo_->prefix() + "-" + pod;
    auto made = run({"ip", "netns", "add", ns});
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << describe(made);
    netns_.push_back(ns);
    auto add = node_->cni(CILIUM_CNI_BINARY,
                          {"ADD", std::string("ctr-") + pod, "/run/netns/" + ns, "default", pod});
    ASSERT_TRUE(add.ok() && add->exit_code == 0) << describe(add) << log();
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
      << log();
  for (const auto& ifindex : host_ifindexes)
    for (const char* dir : {"ingress", "egress"})
      EXPECT_TRUE(fs::exists(*pin_root + "/cilium/links/lxc_" + ifindex + "_" + dir))
          << ifindex << " " << dir;

  // SIGTERM, as the kubelet stops it: a clean exit.
  auto kill = containerd_->ctr({"tasks", "kill", "-s", "SIGTERM", *id});
  ASSERT_TRUE(kill.ok() && kill->exit_code == 0) << describe(kill);
  EXPECT_TRUE(testing::eventually([&] { return taskStatus(*id) == "STOPPED"; }, 30s, 100ms))
      << log();
}

// Each capability of the chart's list is needed: without it the agent either stops at start
// with an error that names the operation it could not do (never a crash, never a hang), or,
// where the capability serves one part of the agent only, runs and reports that part's failure
// by name. kWithout says which, per capability; one missing from it fails the test, so a
// capability added to the chart comes with its proof. SYS_ADMIN also grants what BPF and PERFMON
// grant (the kernel's bpf_capable() and perfmon_capable() accept it), so those two are dropped
// together with it. docs/install.md ("The agent's privileges") has the same table.
struct Without {
  std::vector<std::string> drop;
  bool stops;        // the agent exits at start; otherwise it runs and reports `says`
  std::string says;  // in its log (stops) or in `cilium-dbg status --verbose` / its log (runs)
};
const std::map<std::string, Without> kWithout = {
    {"NET_ADMIN",
     {{"NET_ADMIN"}, true, "create vxlan cilium_vxlan: netlink: Operation not permitted"}},
    {"BPF",
     {{"BPF", "SYS_ADMIN"}, true, "create policy map of endpoint 0: Operation not permitted"}},
    {"PERFMON", {{"PERFMON", "SYS_ADMIN"}, true, "load BPF object bpf_lxc"}},
    {"SYS_ADMIN",
     {{"SYS_ADMIN"},
      false,
      "health endpoint not started: unshare(CLONE_NEWNET): Operation not permitted"}},
    {"NET_RAW", {{"NET_RAW"}, false, "ICMP: ICMP socket: Operation not permitted"}},
};

TEST_F(ImagesE2eTest, EachCapabilityOfTheChartIsNeeded) {
  if (!helmTemplateBuilt()) GTEST_SKIP() << "helm-template is not built (golang-go)";
  startApiServer();
  auto a = chartAgent(localValues(server_.url()));
  ASSERT_TRUE(a.ok()) << a.error().toString();
  for (const auto& cap : a->caps) {
    SCOPED_TRACE("without " + cap);
    auto it = kWithout.find(cap);
    ASSERT_NE(it, kWithout.end()) << "the chart gives " << cap
                                  << ", which this test has no proof of need for";
    const Without& w = it->second;
    std::vector<std::string> caps;
    for (const auto& c : a->caps)
      if (std::find(w.drop.begin(), w.drop.end(), c) == w.drop.end()) caps.push_back(c);
    std::string name = "without-" + cap;
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    std::replace(name.begin(), name.end(), '_', '-');
    auto id = startChartAgent(*a, caps, name, true);
    ASSERT_TRUE(id.ok()) << id.error().toString();
    auto log = [&] { return readFile(node_->stateDir() + "/" + name + ".out").valueOr(""); };
    if (w.stops) {
      // It stops by itself, saying why on its way out (main's last line), not ready meanwhile.
      ASSERT_TRUE(testing::eventually([&] { return taskStatus(*id) == "STOPPED"; }, 60s, 200ms))
          << "still " << taskStatus(*id) << "\n"
          << log();
      std::string out = log();
      EXPECT_NE(out.find("cilium-agent: start control-plane: "), std::string::npos) << out;
      EXPECT_NE(out.find(w.says), std::string::npos) << out;
      for (const char* crash : {"terminate called", "Segmentation fault", "Aborted", "panic"})
        EXPECT_EQ(out.find(crash), std::string::npos) << out;
    } else {
      // It runs, and the part that needs the capability says what it could not do.
      Result<RunOutput> status = Result<RunOutput>(RunOutput{});
      EXPECT_TRUE(testing::eventually(
          [&] {
            if (!probeHealthy(*a)) return false;
            status = run({CILIUM_DBG_BINARY, "-H", "unix://" + sock_, "status", "--verbose"});
            return log().find(w.says) != std::string::npos ||
                   (status.ok() && status->out.find(w.says) != std::string::npos);
          },
          60s, 500ms))
          << describe(status) << "\n"
          << log();
    }
    (void)containerd_->ctr({"tasks", "kill", "-s", "SIGKILL", *id}, 10s);
    EXPECT_TRUE(testing::eventually([&] { return taskStatus(*id) != "RUNNING"; }, 20s, 100ms));
    (void)containerd_->ctr({"tasks", "delete", "-f", *id}, 20s);
    (void)containerd_->ctr({"containers", "delete", *id}, 20s);
    containers_.pop_back();
  }
}

}  // namespace
}  // namespace cilium
