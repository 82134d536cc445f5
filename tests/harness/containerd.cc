// Containerd: a private containerd per test and the clean-up of what it leaves.
#include "tests/harness/containerd.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/common/fd.h"
#include "agent/common/files.h"

namespace cilium::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kShimSocketDir[] = "/run/containerd/s";  // fixed in containerd 1.6

// The pids whose command line contains every one of `needles`.
std::vector<pid_t> pidsWithCmdline(const std::vector<std::string>& needles) {
  std::vector<pid_t> pids;
  for (const auto& e :
       fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmd = readFile(e.path().string() + "/cmdline");
    if (!cmd.ok()) continue;
    bool all = true;
    for (const auto& n : needles) all = all && cmd->find(n) != std::string::npos;
    if (all) pids.push_back(std::stoi(name));
  }
  return pids;
}

// Children of `pid` (from /proc/<child>/stat's ppid field).
std::vector<pid_t> childrenOf(pid_t pid) {
  std::vector<pid_t> kids;
  for (const auto& e :
       fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto stat = readFile(e.path().string() + "/stat");
    if (!stat.ok()) continue;
    auto close = stat->rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(stat->substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    in >> state >> ppid;
    if (ppid == pid) kids.push_back(std::stoi(name));
  }
  return kids;
}

// Paths of the Unix sockets `pid` holds open (its fds' inodes looked up in /proc/<pid>/net/unix).
std::vector<std::string> listeningUnixSockets(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code ec;
  std::string proc = "/proc/" + std::to_string(pid);
  for (const auto& e : fs::directory_iterator(proc + "/fd", ec)) {
    auto target = fs::read_symlink(e.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::vector<std::string> paths;
  std::istringstream in(readFile(proc + "/net/unix").valueOr(""));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string num, refs, proto, flags, type, st, inode, path;
    f >> num >> refs >> proto >> flags >> type >> st >> inode >> path;
    if (!path.empty() && path[0] == '/' && inodes.count(inode)) paths.push_back(path);
  }
  return paths;
}

// Whether something accepts connections on the Unix socket at `path`.
bool socketListening(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof a.sun_path) return true;  // unsure: keep it
  std::memcpy(a.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
  return errno != ECONNREFUSED;
}

}  // namespace

std::string missingContainerd() {
  std::string missing;
  for (const char* path : {"/usr/bin/containerd", "/usr/bin/ctr",
                           "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc"})
    if (::access(path, X_OK) != 0) missing += std::string(missing.empty() ? "" : ", ") + path;
  return missing;
}

Containerd::Containerd(ContainerdOptions opts)
    : opts_(std::move(opts)), socket_(opts_.base + "/containerd.sock") {}

Result<std::unique_ptr<Containerd>> Containerd::start(ContainerdOptions opts) {
  std::unique_ptr<Containerd> c(new Containerd(std::move(opts)));
  const std::string& base = c->opts_.base;
  for (const char* d : {"root", "state", "runc", "opt"}) {
    std::error_code ec;
    fs::create_directories(base + "/" + d, ec);
    if (ec) return makeError(ErrorCode::kInternal, "mkdir {}/{}: {}", base, d, ec.message());
  }
  // Everything containerd keeps lives under base (root, state, sockets, the opt plugin's
  // directory, runc's state for CRI and, through runArgs(), for ctr run).
  std::ofstream(base + "/config.toml")
      << "version = 2\n"
      << "root = \"" << base << "/root\"\n"
      << "state = \"" << base << "/state\"\n"
      << "[grpc]\n  address = \"" << c->socket_ << "\"\n"
      << "[ttrpc]\n  address = \"" << c->socket_ << ".ttrpc\"\n"
      << "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"" << base << "/opt\"\n"
      << c->opts_.extra_config;
  SpawnOptions o;
  o.netns = c->opts_.netns;
  o.stdout_path = base + "/containerd.log";
  o.stderr_path = o.stdout_path;
  CILIUM_ASSIGN_OR_RETURN(auto p,
                          spawn({"/usr/bin/containerd", "--config", base + "/config.toml"}, o));
  c->process_ = std::make_unique<Process>(std::move(p));
  c->started_ = ::time(nullptr) - 1;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline && c->process_->running()) {
    if (fs::exists(c->socket_)) {
      auto v = c->ctr({"version"}, 5s);
      if (v.ok() && v->exit_code == 0) return c;
    }
    std::this_thread::sleep_for(50ms);  // between polls of the socket
  }
  return makeError(ErrorCode::kUnavailable, "containerd did not serve:\n{}", c->log());
}

Containerd::~Containerd() {
  stop();
  cleanup();
}

std::string Containerd::log() const { return readFile(opts_.base + "/containerd.log").valueOr(""); }

Result<RunOutput> Containerd::ctr(const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"/usr/bin/ctr", "--address", socket_, "-n", "k8s.io"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {}, timeout);
}

std::vector<std::string> Containerd::runArgs(const std::string& id) const {
  return {"--runc-root", runcRoot(), "--cgroup", opts_.cgroup_parent + "/" + id};
}

void Containerd::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  if (!process_->wait(15s).ok()) process_->signal(SIGKILL);
  process_.reset();
}

void Containerd::cleanup() {
  std::vector<pid_t> doomed;
  std::set<std::string> shim_sockets;
  for (pid_t shim : pidsWithCmdline({"containerd-shim", socket_})) {
    for (const auto& path : listeningUnixSockets(shim)) shim_sockets.insert(path);
    for (pid_t child : childrenOf(shim)) doomed.push_back(child);
    doomed.push_back(shim);
  }
  for (pid_t pid : doomed) ::kill(pid, SIGKILL);
  // Killed processes leave their cgroups (and release their sockets) only once they are gone.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (pid_t pid : doomed)
    while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline &&
           readFile("/proc/" + std::to_string(pid) + "/stat").valueOr("").find(") Z") ==
               std::string::npos)
      std::this_thread::sleep_for(10ms);
  for (const auto& path : shim_sockets) ::unlink(path.c_str());
  std::vector<std::string> mounts;
  std::istringstream in(readFile("/proc/self/mountinfo").valueOr(""));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devs, root, point;
    f >> id >> parent >> devs >> root >> point;
    if (point.rfind(opts_.base, 0) == 0) mounts.push_back(point);
  }
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  for (const auto& ns : netns_) {
    if (ns.empty() || !fs::exists(ns)) continue;
    ::umount2(ns.c_str(), MNT_DETACH);
    ::unlink(ns.c_str());
  }
  // runc makes the containers' cgroups under the parent in every hierarchy (cgroupfs driver,
  // hybrid layout); children first.
  std::error_code ec;
  if (!opts_.cgroup_parent.empty())
    for (const auto& h : fs::directory_iterator("/sys/fs/cgroup", ec)) {
      std::string top = h.path().string() + opts_.cgroup_parent;
      if (!fs::is_directory(top)) continue;
      std::vector<std::string> dirs;
      for (const auto& e : fs::recursive_directory_iterator(top, ec))
        if (e.is_directory()) dirs.push_back(e.path().string());
      std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a > b; });
      for (const auto& d : dirs) ::rmdir(d.c_str());
      ::rmdir(top.c_str());
    }
  // A shim killed from outside (a sweep of the node namespace) leaves its socket behind in the
  // fixed /run/containerd/s: remove the ones made since our containerd started that nobody
  // listens on any more (a connect reaches a path socket from any namespace).
  std::error_code dir_ec;
  for (const auto& e : fs::directory_iterator(kShimSocketDir, dir_ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_mtime < started_)
      continue;
    if (!socketListening(e.path().string())) ::unlink(e.path().c_str());
  }
  ::rmdir(kShimSocketDir);
  ::rmdir("/run/containerd/fifo");  // ctr's stdio fifos (ctr run), when empty
  ::rmdir("/run/containerd");
}

}  // namespace cilium::testing
