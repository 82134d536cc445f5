// Daemon lifecycle: start sequence, stop sequence, status and debug info.
#include "agent/daemon/daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>

#include "agent/bpf/fs.h"
#include "agent/common/files.h"
#include "agent/common/log.h"

extern char** environ;

namespace cilium::daemon {
namespace {

auto log() {
  static auto l = logger("daemon");
  return l;
}

}  // namespace

std::string_view version() { return CILIUM_VERSION; }

Daemon::Daemon(Config cfg, DaemonOptions opts) : config_(std::move(cfg)), opts_(std::move(opts)) {
  config_.subscribe([](const Config& before, const Config& after) {
    if (before.effectiveLogLevel() != after.effectiveLogLevel()) {
      setLogLevel(after.effectiveLogLevel());
      logger("daemon")->info("log level changed level={}", after.effectiveLogLevel());
    }
  });
}

Daemon::~Daemon() { stop(); }

void Daemon::addComponent(std::unique_ptr<Component> component) {
  components_.push_back(std::move(component));
}

void Daemon::addStatusProvider(StatusProvider provider) {
  std::lock_guard lock(providers_mu_);
  status_providers_.push_back(std::move(provider));
}

void Daemon::addDebugInfoProvider(DebugInfoProvider provider) {
  std::lock_guard lock(providers_mu_);
  debug_providers_.push_back(std::move(provider));
}

void Daemon::addMapPressureProvider(MapPressureProvider provider) {
  std::lock_guard lock(providers_mu_);
  pressure_providers_.push_back(std::move(provider));
}

void Daemon::copyConfig(const std::type_info& part, void* out) const {
  copyConfigPart(config_.snapshot(), part, out);
}

std::vector<std::pair<std::string, double>> Daemon::mapPressure() const {
  std::vector<MapPressureProvider> providers;
  {
    std::lock_guard lock(providers_mu_);
    providers = pressure_providers_;
  }
  std::vector<std::pair<std::string, double>> out;
  for (const auto& p : providers) p(out);
  return out;
}

Status Daemon::startIpam(const Config& cfg) {
  std::optional<IpPrefix> v4 = cfg.enable_ipv4 ? cfg.ipv4_range : std::nullopt;
  std::optional<IpPrefix> v6 = cfg.enable_ipv6 ? cfg.ipv6_range : std::nullopt;
  if (!v4 && !v6) {
    log()->info(
        "no ipv4-range/ipv6-range: IPAM waits for the node's pod CIDR from the cluster "
        "(ipam={}), or stays off without the API server",
        cfg.ipam);
    return okStatus();
  }
  return openIpam(v4, v6);
}

Status Daemon::openIpam(std::optional<IpPrefix> ipv4, std::optional<IpPrefix> ipv6) {
  if (ipam_ != nullptr) return Error(ErrorCode::kFailedPrecondition, "IPAM is open already");
  Config cfg = config_.snapshot();
  ipam::Config ic;
  if (cfg.enable_ipv4) ic.ipv4 = ipv4;
  if (cfg.enable_ipv6) ic.ipv6 = ipv6;
  ic.state_file = cfg.stateFile("ipam.json");
  ic.restore = cfg.restore;
  auto ipam = ipam::Ipam::open(ic);
  if (!ipam.ok()) return ipam.error().withContext("start IPAM");
  ipam_ = std::move(*ipam);
  for (const auto& p : ipam_->status())
    log()->info("IPAM pool family={} cidr={} router={} allocated={}", ipFamilyName(p.family),
                p.cidr.toString(), p.router.toString(), p.allocations.size());
  return okStatus();
}

Status Daemon::lockStateDir(const std::string& state_dir) {
  std::string path = state_dir + "/agent.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return errnoError(errno, "open " + path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return errnoError(errno, "lock " + path);
    std::string holder;
    if (auto text = readFile(path); text.ok())
      holder = text->substr(0, text->find_first_of(" \n"));
    return makeError(ErrorCode::kAlreadyExists,
                     "another cilium-agent (pid {}) runs on state dir {}: refusing to start a "
                     "second one",
                     holder.empty() ? "?" : holder, state_dir);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0)
    return errnoError(errno, "write " + path);
  lock_ = std::move(fd);
  return okStatus();
}

Status Daemon::start() {
  // Routes and components are registered once: a restart is a new Daemon.
  if (ran_) return Error(ErrorCode::kFailedPrecondition, "a Daemon starts only once");
  ran_ = true;
  started_ = true;
  Config cfg = config_.snapshot();
  auto fail = [&](Error e) {
    log()->error("agent start failed: {}", e.message());
    stop();
    return e;
  };

  // The health port first, so probes see 503 "starting" rather than a refused connection. A
  // port in use fails the start right after the state dir's lock: a second agent on the node is
  // told that another agent runs there, before anything else.
  Status health_st = okStatus();
  if (opts_.serve_health_port && cfg.agent_health_port != 0) {
    int port = opts_.health_port_any ? 0 : static_cast<int>(cfg.agent_health_port);
    health_server_ = std::make_unique<metrics::MetricsServer>(health_registry_,
                                                              fmt::format("127.0.0.1:{}", port));
    health_server_->addGet("/healthz", [this] { return healthProbe(); });
    health_st = health_server_->start();
    if (!health_st.ok()) health_st = health_st.error().withContext("agent-health-port");
  }
  if (auto st = makeDirs(cfg.state_dir, 0755); !st.ok())
    return fail(st.error().withContext("state dir"));
  if (auto st = lockStateDir(cfg.state_dir); !st.ok()) return fail(st.error());
  if (!health_st.ok()) return fail(health_st.error());
  if (auto st = makeDirs(cfg.persistentStateDir(), 0700); !st.ok())
    return fail(st.error().withContext("state dir"));

  if (opts_.manage_bpffs) {
    if (auto st = bpf::ensureBpffs(cfg.bpf_root); !st.ok()) return fail(st.error());
    if (auto st = bpf::makePinDir(cfg.bpf_pin_dir); !st.ok()) return fail(st.error());
  }

  if (auto st = startIpam(cfg); !st.ok()) return fail(st.error());
  if (auto st = registerCoreRoutes(); !st.ok()) return fail(st.error());

  for (auto& c : components_) {
    log()->info("starting component={}", c->name());
    if (auto st = c->start(*this); !st.ok())
      return fail(st.error().withContext(fmt::format("start {}", c->name())));
    started_components_++;
  }
  if (auto st = registerReservedRoutes(); !st.ok()) return fail(st.error());

  api::ServerOptions so = opts_.server;
  so.socket_path = cfg.socket_path;
  server_ = std::make_unique<api::Server>(router_, so);
  if (auto st = server_->start(); !st.ok()) return fail(st.error());

  if (!cfg.write_cni_conf_when_ready.empty())
    if (auto st = writeCniConfig(cfg); !st.ok()) return fail(st.error());

  ready_ = true;
  log()->info("agent ready node={} socket={} version={}", cfg.node_name, cfg.socket_path,
              version());
  return okStatus();
}

void Daemon::stop() {
  if (!started_) return;
  started_ = false;
  ready_ = false;
  if (server_) {
    server_->stop();
    server_.reset();
  }
  while (started_components_ > 0) {
    auto& c = components_[--started_components_];
    log()->info("stopping component={}", c->name());
    c->stop();
  }
  // Every IPAM change is persisted before it is acknowledged: nothing is left to flush.
  ipam_.reset();
  // Last: probes see 503 while the agent stops, not a refused connection.
  if (health_server_) {
    health_server_->stop();
    health_server_.reset();
  }
  lock_.reset();
  log()->info("agent stopped");
}

void Daemon::coreStatus(api::StatusResponse& s) const {
  Config cfg = config_.snapshot();
  s.cilium = api::ComponentStatus{
      ready() ? api::StatusState::kOk : api::StatusState::kWarning,
      ready() ? fmt::format("{} ({})", version(), cfg.node_name) : std::string("starting")};
  s.kvstore = api::ComponentStatus{api::StatusState::kDisabled, ""};
  s.kubernetes = api::K8sStatus{api::StatusState::kDisabled, "", {}};
  s.hubble = api::HubbleStatus{api::StatusState::kDisabled, "", std::nullopt};
  s.cluster = api::ClusterStatus{std::nullopt, cfg.node_name};
  int64_t cid = cfg.cluster_id;
  s.identity_range = api::IdentityRange{std::max<int64_t>(256, cid << 16), ((cid + 1) << 16) - 1};
  s.cni_chaining = api::CniChainingStatus{"none"};
  s.datapath_mode = "veth";
  const bool tunnel = cfg.routing_mode == "tunnel";
  s.routing = api::Routing{"BPF", tunnel ? "Tunnel" : "Native", tunnel ? "vxlan" : ""};
  api::IpamStatus ip;
  if (ipam_ == nullptr) {
    ip.status = "disabled: no pod CIDR is known";
  } else {
    std::vector<std::string> parts;
    for (const auto& p : ipam_->status()) {
      bool v4 = p.family == IpFamily::kV4;
      parts.push_back(fmt::format("{}: {}/{} allocated from {}", v4 ? "IPv4" : "IPv6",
                                  p.allocations.size(), p.capacity, p.cidr.toString()));
      for (const auto& a : p.allocations) {
        ip.allocations[a.ip.toString()] = a.owner;
        (v4 ? ip.ipv4 : ip.ipv6).push_back(a.ip.toString());
      }
    }
    ip.status = fmt::format("{}", fmt::join(parts, ", "));
  }
  s.ipam = ip;
}

api::StatusResponse Daemon::status() const {
  api::StatusResponse s;
  coreStatus(s);
  std::vector<StatusProvider> providers;
  {
    std::lock_guard lock(providers_mu_);
    providers = status_providers_;
  }
  for (const auto& p : providers) p(s);
  // The overall state: a failing subsystem makes the agent as a whole fail.
  if (ready()) {
    auto failing = [](const auto& opt) {
      return opt && opt->state == api::StatusState::kFailure ? opt->msg : std::string();
    };
    for (const auto& [name, msg] :
         {std::pair<std::string, std::string>{"kvstore", failing(s.kvstore)},
          {"kubernetes", failing(s.kubernetes)},
          {"hubble", failing(s.hubble)},
          {"container-runtime", failing(s.container_runtime)}})
      if (!msg.empty()) {
        s.cilium = api::ComponentStatus{api::StatusState::kFailure, name + ": " + msg};
        break;
      }
  }
  return s;
}

std::pair<int, std::string> Daemon::healthProbe() const {
  if (!ready()) return {503, "cilium: starting\n"};
  auto s = status();
  if (!s.cilium || s.cilium->state != api::StatusState::kOk)
    return {503, "cilium: " + (s.cilium ? s.cilium->msg : std::string("unknown")) + "\n"};
  return {200, "ok\n"};
}

int Daemon::healthPort() const { return health_server_ ? health_server_->port() : 0; }

api::DaemonConfiguration Daemon::configuration() const {
  Config cfg = config_.snapshot();
  api::DaemonConfigurationSpec spec{config_.mutableOptions(), cfg.enable_policy};
  api::DaemonConfigurationStatus st;
  st.realized = spec;
  st.immutable = config_.immutableOptions();
  st.ignored_options = cfg.ignored_options;
  st.daemon_configuration_map = config_.allOptions();
  api::NodeAddressing addr;
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    api::NodeAddressingElement e;
    e.enabled = f == IpFamily::kV4 ? cfg.enable_ipv4 : cfg.enable_ipv6;
    if (ipam_ != nullptr) {
      if (auto r = ipam_->router(f)) e.ip = r->toString();
      if (auto c = ipam_->cidr(f)) e.alloc_range = c->toString();
    }
    (f == IpFamily::kV4 ? addr.ipv4 : addr.ipv6) = e;
  }
  st.addressing = addr;
  // A fixed ipv4-range is Cilium's old host-scope mode; otherwise where the CIDR came from.
  st.ipam_mode = cfg.ipv4_range || cfg.ipv6_range ? "host-scope" : cfg.ipam;
  st.datapath_mode = "veth";
  // What cilium-cni gives pod devices (validateConfig checked that it exists).
  const uint32_t base_mtu = cfg.mtu != 0 ? cfg.mtu : datapath::kDefaultBaseMtu;
  st.device_mtu = datapath::podMtu(base_mtu, cfg.routing_mode == "tunnel").valueOr(base_mtu);
  st.route_mtu = st.device_mtu;
  st.k8s_configuration = cfg.k8s_kubeconfig_path;
  st.k8s_endpoint = cfg.k8s_api_server;
  return api::DaemonConfiguration{spec, st};
}

api::DebugInfo Daemon::debugInfo() const {
  api::DebugInfo d;
  d.cilium_version = std::string(version());
  utsname u{};
  if (::uname(&u) == 0) d.kernel_version = fmt::format("{} {} {}", u.sysname, u.release, u.version);
  d.cilium_status = status();
  // Only the agent's own variables: the rest of the environment may hold secrets.
  for (char** e = environ; e != nullptr && *e != nullptr; e++) {
    std::string_view v(*e);
    if (v.rfind("CILIUM_", 0) == 0 || v.rfind("K8S_", 0) == 0)
      d.environment_variables.emplace_back(v);
  }
  std::sort(d.environment_variables.begin(), d.environment_variables.end());
  Config cfg = config_.snapshot();
  d.subsystem["daemon"] = fmt::format("state-dir={} bpf-pin-dir={} socket={} ready={}",
                                      cfg.state_dir, cfg.bpf_pin_dir, cfg.socket_path, ready());
  std::vector<DebugInfoProvider> providers;
  {
    std::lock_guard lock(providers_mu_);
    providers = debug_providers_;
  }
  for (const auto& p : providers) p(d);
  return d;
}

Status writeCniConfig(const Config& cfg) {
  const std::string& path = cfg.write_cni_conf_when_ready;
  auto slash = path.rfind('/');
  std::string dir = path.substr(0, slash == 0 ? 1 : slash);
  std::string file = path.substr(slash + 1);
  CILIUM_RETURN_IF_ERROR(makeDirs(dir, 0755));
  nlohmann::json conf = {
      {"cniVersion", "0.3.1"},
      {"name", "cilium"},
      {"plugins", nlohmann::json::array({{{"type", "cilium-cni"},
                                          {"enable-debug", cfg.debug},
                                          {"log-file", cfg.cni_log_file},
                                          // cilium-cni talks to this agent's socket.
                                          {"socket-path", cfg.socket_path}}})},
  };
  if (auto st = writeFileAtomic(path, conf.dump(2) + "\n", 0644); !st.ok())
    return st.error().withContext("write CNI configuration");
  log()->info("wrote CNI configuration path={}", path);
  if (!cfg.cni_exclusive) return okStatus();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errnoError(errno, "cni-exclusive: open " + dir);
  std::vector<std::string> others;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    auto ends = [&](std::string_view s) {
      return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (name != file && (ends(".conf") || ends(".conflist") || ends(".json")))
      others.push_back(name);
  }
  ::closedir(d);
  for (const auto& name : others) {
    std::string from = dir + "/" + name;
    if (::rename(from.c_str(), (from + ".cilium_bak").c_str()) != 0)
      return errnoError(errno, "cni-exclusive: rename " + from);
    log()->info("cni-exclusive: disabled other CNI configuration path={}", from);
  }
  return okStatus();
}

}  // namespace cilium::daemon
