// cilium-operator: flags, leader election, and the duties run while leading.
#include "operator/operator.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

#include "agent/common/cli.h"
#include "agent/common/files.h"
#include "agent/common/log.h"
#include "agent/config/config.h"
#include "agent/k8s/source.h"
#include "agent/metrics/server.h"
#include "operator/identity_gc.h"
#include "operator/ipam/controller.h"
#include "operator/leader_election.h"
#include "operator/node_taint.h"
#include "operator/orphan_gc.h"

namespace cilium::op {
namespace {

auto& log() {
  static auto l = cilium::logger("operator");
  return l;
}

// Go durations as Cilium's flags and ConfigMap write them ("15s", "500ms", "15m0s"), or bare
// seconds.
Result<double> parseSeconds(const std::string& flag, const std::string& text) {
  if (auto plain = config::parseUint(text); plain.ok() && *plain > 0)
    return static_cast<double>(*plain);
  auto d = config::parseDuration(text);
  if (!d.ok() || d->count() <= 0)
    return makeError(ErrorCode::kInvalidArgument,
                     "--{}={}: not a positive duration (15s, 500ms, 15m0s)", flag, text);
  return static_cast<double>(d->count()) / 1000.0;
}

// A ConfigMap mounted as one file per key (Cilium mounts cilium-config into the operator too):
// key -> value, values trimmed; dot entries (the mount's bookkeeping) and directories skipped.
Result<std::map<std::string, std::string>> readConfigDir(const std::string& dir) {
  std::map<std::string, std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errnoError(errno, "--config-dir: open " + dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(d);
  for (const auto& name : names) {
    std::string path = dir + "/" + name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errnoError(errno, "--config-dir: " + path);
    if (S_ISDIR(st.st_mode)) continue;
    CILIUM_ASSIGN_OR_RETURN(std::string value, readFile(path));
    auto first = value.find_first_not_of(" \t\r\n");
    auto last = value.find_last_not_of(" \t\r\n");
    out[name] = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  }
  return out;
}

struct Flags {
  std::unique_ptr<CLI::App> app;
  std::string lease_duration = "15s", renew_deadline = "10s", retry_period = "2s";
  std::string gc_interval = "15m", heartbeat_timeout = "30m";
  std::string cep_gc_interval = "5m", nodes_gc_interval = "5m";
  std::string cidrs, cidrs6;
};

// A list of CIDRs as a flag gives it (commas) or Cilium's cilium-config writes several pools
// (spaces), each of `family`: kInvalidArgument naming `flag` otherwise.
Result<std::vector<std::string>> splitCidrs(const std::string& text, IpFamily family,
                                            const std::string& flag) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(", \t\n", start);
    if (end == std::string::npos) end = text.size();
    std::string one = text.substr(start, end - start);
    if (!one.empty()) out.push_back(one);
    start = end + 1;
  }
  for (const auto& cidr : out) {
    auto p = IpPrefix::parse(cidr);
    if (!p.ok())
      return makeError(ErrorCode::kInvalidArgument, "--{}={}: {}", flag, cidr, p.error().message());
    if (p->family() != family)
      return makeError(ErrorCode::kInvalidArgument, "--{}={}: not {}", flag, cidr,
                       family == IpFamily::kV4 ? "IPv4" : "IPv6");
  }
  return out;
}

void declare(Flags& f, Config& c) {
  f.app = cli::makeApp(
      "Cluster-wide duties of Cilium: cluster-pool IPAM and identity GC, with leader election.\n"
      "Options come from --config-dir (one file per key, the cilium-config ConfigMap as\n"
      "Kubernetes mounts it; keys this operator does not know are ignored) and flags, which\n"
      "win.",
      "cilium-operator");
  CLI::App& app = *f.app;
  // The config dir's value first, a flag's after it: the last one wins.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--config-dir", c.config_dir, "Directory with one file per key");
  app.add_option("--k8s-api-server", c.k8s_api_server, "Kubernetes API server URL");
  app.add_option("--k8s-kubeconfig-path", c.k8s_kubeconfig_path, "Path of a kubeconfig file");
  app.add_option("--operator-k8s-client-qps", c.k8s_client_qps,
                 "Queries per second to the API server (0: no limit)")
      ->check(CLI::Range(0.0, 1e6))
      ->default_str("100");
  app.add_option("--operator-k8s-client-burst", c.k8s_client_burst,
                 "Requests allowed at once above the QPS limit")
      ->check(CLI::Range(1, 1000000))
      ->default_str("200");
  app.add_option("--ipam", c.ipam, "IPAM mode: cluster-pool or kubernetes")
      ->check(CLI::IsMember({"cluster-pool", "kubernetes"}))
      ->default_str("cluster-pool");
  app.add_option("--cluster-pool-ipv4-cidr", f.cidrs,
                 "IPv4 CIDRs to carve node pod CIDRs from (separated by commas or spaces)")
      ->default_str("10.0.0.0/8");
  app.add_option("--cluster-pool-ipv4-mask-size", c.cluster_pool_ipv4_mask_size,
                 "Prefix length of each node's pod CIDR")
      ->check(CLI::Range(1, 32))
      ->default_str("24");
  app.add_option("--cluster-pool-ipv6-cidr", f.cidrs6,
                 "IPv6 CIDRs to carve node IPv6 pod CIDRs from (separated by commas or spaces; "
                 "empty: no IPv6 pod CIDRs)");
  app.add_option("--cluster-pool-ipv6-mask-size", c.cluster_pool_ipv6_mask_size,
                 "Prefix length of each node's IPv6 pod CIDR")
      ->check(CLI::Range(1, 128))
      ->default_str("112");
  app.add_option("--enable-leader-election", c.leader_election,
                 "Act only while holding the cilium-operator-resource-lock Lease")
      ->default_str("true");
  app.add_option("--leader-election-identity", c.leader_election_identity,
                 "This replica's name in the Lease (default <hostname>-<pid>)");
  app.add_option("--leader-election-namespace", c.leader_election_namespace,
                 "Namespace of the Lease")
      ->default_str("$CILIUM_K8S_NAMESPACE or kube-system");
  app.add_option("--leader-election-lease-duration", f.lease_duration,
                 "How long a leader's Lease lasts without renewal")
      ->default_str("15s");
  app.add_option("--leader-election-renew-deadline", f.renew_deadline,
                 "How long a leader keeps trying to renew before stepping down")
      ->default_str("10s");
  app.add_option("--leader-election-retry-period", f.retry_period,
                 "Interval between attempts to acquire or renew the Lease")
      ->default_str("2s");
  app.add_option("--identity-allocation-mode", c.identity_allocation_mode,
                 "crd: CiliumIdentity objects, collected when unused; kvstore: identities in etcd, "
                 "collected by the agents (no GC here)")
      ->check(CLI::IsMember({"crd", "kvstore"}))
      ->default_str("crd");
  app.add_option("--identity-gc-interval", f.gc_interval,
                 "How often unused identities are collected")
      ->default_str("15m");
  app.add_option("--identity-heartbeat-timeout", f.heartbeat_timeout,
                 "How long an identity stays unused before it is deleted")
      ->default_str("30m");
  app.add_option("--cilium-endpoint-gc", c.cilium_endpoint_gc,
                 "Delete CiliumEndpoints whose Pod no longer exists")
      ->default_str("true");
  app.add_option("--cilium-endpoint-gc-interval", f.cep_gc_interval,
                 "How often CiliumEndpoints without a Pod are looked for (deleted on the second "
                 "pass that finds them)")
      ->default_str("5m");
  app.add_option("--nodes-gc-interval", f.nodes_gc_interval,
                 "How often CiliumNodes without a Node are looked for (deleted on the second pass "
                 "that finds them)")
      ->default_str("5m");
  app.add_option("--remove-cilium-node-taints", c.remove_cilium_node_taints,
                 "Remove the agent-not-ready taint from a node once a Cilium agent pod on it is "
                 "ready")
      ->default_str("true");
  app.add_option("--set-cilium-node-taints", c.set_cilium_node_taints,
                 "Put the agent-not-ready taint on a node whose Cilium agent pod is scheduled but "
                 "not ready")
      ->default_str("false");
  app.add_option("--agent-not-ready-taint-key", c.agent_not_ready_taint_key,
                 "Key of the taint that keeps pods off a node until its agent is ready")
      ->default_str(kAgentNotReadyTaint);
  app.add_option("--cilium-pod-namespace", c.cilium_pod_namespace,
                 "Namespace of the Cilium agent pods")
      ->default_str("$CILIUM_K8S_NAMESPACE or kube-system");
  app.add_option("--cilium-pod-labels", c.cilium_pod_labels,
                 "Labels of the Cilium agent pods (key=value, comma-separated)")
      ->default_str("k8s-app=cilium");
  app.add_option("--operator-api-serve-addr", c.operator_api_serve_addr,
                 "Address of the operator's API: GET /healthz and /metrics")
      ->default_str("localhost:9234");
  app.add_option("--enable-metrics", c.enable_metrics,
                 "Serve Prometheus metrics on --operator-prometheus-serve-addr")
      ->default_str("false");
  app.add_option("--operator-prometheus-serve-addr", c.operator_prometheus_serve_addr,
                 "Address of the Prometheus metrics endpoint (with --enable-metrics)")
      ->default_str(":9963");
  app.add_flag("-D,--debug", c.debug, "Debug logging");
  app.add_flag("--version", c.version, "Print the version and exit");
}

}  // namespace

Result<Config> parseFlags(const std::vector<std::string>& args,
                          const std::function<const char*(const char*)>& getenv) {
  Config c;
  if (const char* ns = getenv ? getenv("CILIUM_K8S_NAMESPACE") : nullptr; ns && *ns)
    c.leader_election_namespace = c.cilium_pod_namespace = ns;
  Flags f;
  declare(f, c);
  // --config-dir is read before the flags are parsed: its keys become flags placed before the
  // command line's own.
  std::string dir;
  for (size_t i = 0; i < args.size(); i++) {
    if (args[i].rfind("--config-dir=", 0) == 0) dir = args[i].substr(13);
    if (args[i] == "--config-dir" && i + 1 < args.size()) dir = args[i + 1];
  }
  std::vector<std::string> all;
  if (!dir.empty() && std::find(args.begin(), args.end(), "--help") == args.end() &&
      std::find(args.begin(), args.end(), "-h") == args.end()) {
    CILIUM_ASSIGN_OR_RETURN(auto keys, readConfigDir(dir));
    for (const auto& [key, value] : keys) {
      const CLI::Option* opt = f.app->get_option_no_throw("--" + key);
      if (opt == nullptr || key == "config-dir" || key == "version" || key == "help") {
        c.ignored_keys.push_back(key);
        continue;
      }
      all.push_back("--" + key + "=" + value);
    }
  }
  all.insert(all.end(), args.begin(), args.end());
  auto outcome_or = cli::parse(*f.app, all);
  if (!outcome_or.ok() && !dir.empty())
    return outcome_or.error().withContext("config dir " + dir + " and flags");
  CILIUM_ASSIGN_OR_RETURN(auto outcome, std::move(outcome_or));
  if (outcome == cli::Outcome::kHelp) {
    c.help = true;
    return c;
  }
  if (!f.cidrs.empty()) {
    CILIUM_ASSIGN_OR_RETURN(c.cluster_pool_ipv4_cidr,
                            splitCidrs(f.cidrs, IpFamily::kV4, "cluster-pool-ipv4-cidr"));
  }
  if (!f.cidrs6.empty()) {
    CILIUM_ASSIGN_OR_RETURN(c.cluster_pool_ipv6_cidr,
                            splitCidrs(f.cidrs6, IpFamily::kV6, "cluster-pool-ipv6-cidr"));
  }
  CILIUM_ASSIGN_OR_RETURN(c.leader_election_lease_duration,
                          parseSeconds("leader-election-lease-duration", f.lease_duration));
  CILIUM_ASSIGN_OR_RETURN(c.leader_election_renew_deadline,
                          parseSeconds("leader-election-renew-deadline", f.renew_deadline));
  CILIUM_ASSIGN_OR_RETURN(c.leader_election_retry_period,
                          parseSeconds("leader-election-retry-period", f.retry_period));
  CILIUM_ASSIGN_OR_RETURN(c.identity_gc_interval,
                          parseSeconds("identity-gc-interval", f.gc_interval));
  CILIUM_ASSIGN_OR_RETURN(c.identity_heartbeat_timeout,
                          parseSeconds("identity-heartbeat-timeout", f.heartbeat_timeout));
  CILIUM_ASSIGN_OR_RETURN(c.cilium_endpoint_gc_interval,
                          parseSeconds("cilium-endpoint-gc-interval", f.cep_gc_interval));
  CILIUM_ASSIGN_OR_RETURN(c.nodes_gc_interval,
                          parseSeconds("nodes-gc-interval", f.nodes_gc_interval));
  for (const auto& [flag, addr] :
       {std::pair<std::string, std::string>{"operator-api-serve-addr", c.operator_api_serve_addr},
        {"operator-prometheus-serve-addr", c.operator_prometheus_serve_addr}})
    if (auto a = metrics::parseListenAddress(addr); !a.ok())
      return makeError(ErrorCode::kInvalidArgument, "--{}: {}", flag, a.error().message());
  if (auto labels = parsePodLabels(c.cilium_pod_labels); !labels.ok())
    return makeError(ErrorCode::kInvalidArgument, "--cilium-pod-labels={}: {}", c.cilium_pod_labels,
                     labels.error().message());
  if (c.agent_not_ready_taint_key.empty())
    return Error(ErrorCode::kInvalidArgument, "--agent-not-ready-taint-key: must not be empty");
  if (c.leader_election_renew_deadline >= c.leader_election_lease_duration)
    return Error(ErrorCode::kInvalidArgument,
                 "--leader-election-renew-deadline must be shorter than "
                 "--leader-election-lease-duration");
  if (c.debug) c.log_level = "debug";
  return c;
}

std::string usage() {
  Config c;
  Flags f;
  declare(f, c);
  return cli::help(*f.app);
}

// The controller's options from the configuration (both families' pools, parsed).
static Result<ClusterPoolOptions> clusterPoolOptions(const Config& config) {
  ClusterPoolOptions o;
  for (const auto& c : config.cluster_pool_ipv4_cidr) {
    CILIUM_ASSIGN_OR_RETURN(auto p, IpPrefix::parse(c));
    o.ipv4_cidrs.push_back(p);
  }
  for (const auto& c : config.cluster_pool_ipv6_cidr) {
    CILIUM_ASSIGN_OR_RETURN(auto p, IpPrefix::parse(c));
    o.ipv6_cidrs.push_back(p);
  }
  o.ipv4_mask_size = config.cluster_pool_ipv4_mask_size;
  o.ipv6_mask_size = config.cluster_pool_ipv6_mask_size;
  return o;
}

Result<std::unique_ptr<Operator>> Operator::start(const Config& config, k8s::ClientConfig cc) {
  if (config.ipam == "cluster-pool") {
    // The same checks the controller makes, before anything runs.
    CILIUM_ASSIGN_OR_RETURN(auto opts, clusterPoolOptions(config));
    if (!opts.ipv4_cidrs.empty()) {
      auto pool = ClusterPool::create(opts.ipv4_cidrs, opts.ipv4_mask_size);
      if (!pool.ok()) return pool.error().withContext("cluster-pool IPAM: cluster-pool-ipv4-cidr");
    }
    if (!opts.ipv6_cidrs.empty()) {
      auto pool = ClusterPool::create(opts.ipv6_cidrs, opts.ipv6_mask_size);
      if (!pool.ok()) return pool.error().withContext("cluster-pool IPAM: cluster-pool-ipv6-cidr");
    }
  }
  if (auto labels = parsePodLabels(config.cilium_pod_labels); !labels.ok())
    return labels.error().withContext("cilium-pod-labels");
  std::unique_ptr<Operator> op(new Operator(config));
  CILIUM_ASSIGN_OR_RETURN(op->client_, k8s::Client::create(std::move(cc)));
  CILIUM_RETURN_IF_ERROR(op->registerMetrics());
  CILIUM_RETURN_IF_ERROR(op->startServers());
  if (!config.leader_election) {
    log()->info("leader election disabled: acting at once");
    op->startDuties();
    return op;
  }
  LeaderElectionOptions lo;
  lo.namespace_name = config.leader_election_namespace;
  lo.identity = config.leader_election_identity;
  if (lo.identity.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    lo.identity = fmt::format("{}-{}", host, ::getpid());
  }
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  lo.lease_duration = ms(config.leader_election_lease_duration);
  lo.renew_deadline = ms(config.leader_election_renew_deadline);
  lo.retry_period = ms(config.leader_election_retry_period);
  Operator* self = op.get();
  op->elector_ = std::make_unique<LeaderElector>(
      *op->client_, lo, [self] { self->startDuties(); }, [self] { self->stopDuties(); });
  op->elector_->start();
  log()->info("waiting to become leader identity={}", lo.identity);
  return op;
}

Operator::Operator(Config config) : config_(std::move(config)) {}

Status Operator::registerMetrics() {
  CILIUM_ASSIGN_OR_RETURN(identity_gc_entries_,
                          registry_.gauge("cilium_operator_identity_gc_entries",
                                          "Identities alive and deleted in the last GC pass",
                                          {"status"}));
  CILIUM_ASSIGN_OR_RETURN(identity_gc_runs_,
                          registry_.gauge("cilium_operator_identity_gc_runs",
                                          "Identity GC passes, by outcome", {"outcome"}));
  CILIUM_ASSIGN_OR_RETURN(
      endpoint_gc_objects_,
      registry_.counter("cilium_operator_endpoint_gc_objects",
                        "CiliumEndpoints deleted by the GC (their Pod is gone), by outcome",
                        {"outcome"}));
  return okStatus();
}

Status Operator::startServers() {
  // /healthz: this replica runs and reaches the API server (as Cilium's, whose liveness probe
  // this is). Answered by a request to /version, so a dead API server shows at once.
  api_server_ = std::make_unique<metrics::MetricsServer>(registry_, config_.operator_api_serve_addr);
  api_server_->addGet("/healthz", [this]() -> std::pair<int, std::string> {
    auto r = client_->get("/version");
    if (!r.ok()) return {500, "API server unreachable: " + r.error().message() + "\n"};
    if (!r->ok()) return {500, fmt::format("API server answers HTTP {}\n", r->status)};
    return {200, "ok\n"};
  });
  if (auto st = api_server_->start(); !st.ok())
    return st.error().withContext("--operator-api-serve-addr");
  if (config_.enable_metrics) {
    metrics_server_ =
        std::make_unique<metrics::MetricsServer>(registry_, config_.operator_prometheus_serve_addr);
    if (auto st = metrics_server_->start(); !st.ok())
      return st.error().withContext("--operator-prometheus-serve-addr");
  }
  return okStatus();
}

int Operator::apiPort() const { return api_server_ ? api_server_->port() : 0; }

Operator::~Operator() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  elector_.reset();  // steps down: stopDuties()
  stopDuties();
}

bool Operator::leading() const { return elector_ == nullptr || elector_->leading(); }

ClusterPoolController* Operator::clusterPool() {
  std::lock_guard lock(mu_);
  return ipam_.get();
}

IdentityGc* Operator::identityGc() {
  std::lock_guard lock(mu_);
  return identity_gc_.get();
}

OrphanGc* Operator::endpointGc() {
  std::lock_guard lock(mu_);
  return endpoint_gc_.get();
}

OrphanGc* Operator::nodeGc() {
  std::lock_guard lock(mu_);
  return node_gc_.get();
}

NodeTaintController* Operator::nodeTaint() {
  std::lock_guard lock(mu_);
  return node_taint_.get();
}

void Operator::startDuties() {
  const bool pool = config_.ipam == "cluster-pool";
  const bool gc = config_.identity_allocation_mode == "crd";
  const bool cep_gc = config_.cilium_endpoint_gc;
  const bool taints = config_.remove_cilium_node_taints || config_.set_cilium_node_taints;
  // CiliumNodes and Nodes always: the CiliumNode GC runs in every mode.
  std::vector<std::string> kinds = {"CiliumNode", "Node"};
  if (gc || cep_gc) kinds.push_back("CiliumEndpoint");
  if (gc) kinds.push_back("CiliumIdentity");
  if (cep_gc || taints) kinds.push_back("Pod");
  if (!pool) log()->info("ipam={}: no pod CIDRs to allocate", config_.ipam);
  auto source = std::make_unique<k8s::ApiSource>(*client_, k8s::ApiSourceOptions{{}, kinds, {}});
  if (auto st = source->start(); !st.ok()) {
    log()->error("cannot watch the API server: {}", st.error().message());
    return;
  }
  // The informers retry an unreachable API server; the duties wait for the full state, so that
  // every existing allocation is known before the first new one.
  while (!source->waitForSync(std::chrono::seconds(5))) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    log()->info("waiting for the first full state from the API server");
  }
  std::unique_ptr<ClusterPoolController> ipam;
  if (pool) {
    auto opts = clusterPoolOptions(config_);
    if (!opts.ok()) {
      log()->error("{}", opts.error().message());
      return;
    }
    auto ctl = ClusterPoolController::create(*client_, source->stores().cilium_nodes, *opts);
    if (!ctl.ok()) {
      log()->error("{}", ctl.error().message());
      return;
    }
    ipam = std::move(*ctl);
    ipam->start();
  }
  std::unique_ptr<IdentityGc> identity_gc;
  if (gc) {
    auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
    IdentityGcOptions go;
    go.interval = ms(config_.identity_gc_interval);
    go.heartbeat_timeout = ms(config_.identity_heartbeat_timeout);
    go.on_pass = [this](size_t alive, size_t deleted, size_t failed) {
      identity_gc_entries_->with({"alive"}).set(static_cast<double>(alive));
      identity_gc_entries_->with({"deleted"}).set(static_cast<double>(deleted));
      identity_gc_runs_->with({failed == 0 ? "success" : "fail"}).add(1);
    };
    identity_gc = std::make_unique<IdentityGc>(*client_, source->stores().cilium_identities,
                                               source->stores().cilium_endpoints, go);
    identity_gc->start();
    log()->info("identity GC started interval={}s heartbeat_timeout={}s",
                config_.identity_gc_interval, config_.identity_heartbeat_timeout);
  }
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  std::unique_ptr<OrphanGc> endpoint_gc;
  if (cep_gc) {
    endpoint_gc = std::make_unique<OrphanGc>(
        *client_, k8s::Resource<k8s::CiliumEndpoint>::info(), "CiliumEndpoint",
        endpointOrphans(source->stores().cilium_endpoints, source->stores().pods),
        ms(config_.cilium_endpoint_gc_interval), [this](bool ok) {
          endpoint_gc_objects_->with({ok ? "success" : "fail"}).inc();
        });
    endpoint_gc->start();
  }
  auto node_gc = std::make_unique<OrphanGc>(
      *client_, k8s::Resource<k8s::CiliumNode>::info(), "CiliumNode",
      nodeOrphans(source->stores().cilium_nodes, source->stores().nodes),
      ms(config_.nodes_gc_interval));
  node_gc->start();
  log()->info("GC started cilium-endpoint-gc={} interval={}s nodes-gc-interval={}s", cep_gc,
              config_.cilium_endpoint_gc_interval, config_.nodes_gc_interval);
  std::unique_ptr<NodeTaintController> node_taint;
  if (taints) {
    NodeTaintOptions to;
    to.remove_taint = config_.remove_cilium_node_taints;
    to.set_taint = config_.set_cilium_node_taints;
    to.taint_key = config_.agent_not_ready_taint_key;
    to.pod_namespace = config_.cilium_pod_namespace;
    to.pod_labels = *parsePodLabels(config_.cilium_pod_labels);  // checked by parseFlags
    node_taint = std::make_unique<NodeTaintController>(*client_, source->stores().nodes,
                                                       source->stores().pods, to);
    node_taint->start();
  }
  std::lock_guard lock(mu_);
  source_ = std::move(source);
  ipam_ = std::move(ipam);
  identity_gc_ = std::move(identity_gc);
  endpoint_gc_ = std::move(endpoint_gc);
  node_gc_ = std::move(node_gc);
  node_taint_ = std::move(node_taint);
}

void Operator::stopDuties() {
  std::unique_ptr<ClusterPoolController> ipam;
  std::unique_ptr<IdentityGc> identity_gc;
  std::unique_ptr<k8s::ApiSource> source;
  {
    std::lock_guard lock(mu_);
    ipam = std::move(ipam_);
    identity_gc = std::move(identity_gc_);
    source = std::move(source_);
  }
  std::unique_ptr<OrphanGc> endpoint_gc, node_gc;
  std::unique_ptr<NodeTaintController> node_taint;
  {
    std::lock_guard lock(mu_);
    endpoint_gc = std::move(endpoint_gc_);
    node_gc = std::move(node_gc_);
    node_taint = std::move(node_taint_);
  }
  ipam.reset();  // before the stores they read
  identity_gc.reset();
  endpoint_gc.reset();
  node_gc.reset();
  node_taint.reset();
  if (source) source->stop();
}

}  // namespace cilium::op
