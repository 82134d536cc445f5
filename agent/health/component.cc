// HealthComponent: the node's health server, the health endpoint, the prober and its surfaces.
#include "agent/health/component.h"

#include <nlohmann/json.hpp>

#include "agent/common/log.h"
#include "agent/datapath/netlink.h"
#include "agent/endpoint/manager.h"
#include "agent/health/config.h"
#include "agent/metrics/registry.h"
#include "agent/node/node.h"

namespace cilium::health {
namespace {

auto log() {
  static auto l = logger("health");
  return l;
}

}  // namespace

struct HealthComponent::Shared {
  std::mutex mu;
  Prober* prober = nullptr;  // null once stopped
  Report last() {
    std::lock_guard lock(mu);
    return prober != nullptr ? prober->last() : Report{};
  }
};

std::optional<IpAddr> healthAddress(const ipam::Ipam& ipam, IpFamily family) {
  return ipam.addressOf(family, kHealthOwner);
}

HealthComponent::HealthComponent(ComponentDeps deps)
    : deps_(std::move(deps)), shared_(std::make_shared<Shared>()) {}

// stop() has run (the Daemon stops every started component); the control plane may be gone by
// now, so nothing here reaches it.
HealthComponent::~HealthComponent() {
  if (prober_) prober_->stop();
  std::lock_guard lock(shared_->mu);
  shared_->prober = nullptr;
}

Status HealthComponent::startEndpoint(component::Host& host, const IpAddr& ip,
                                      const std::optional<IpAddr>& ip6) {
  endpoint::Manager* eps = deps_.endpoints ? deps_.endpoints() : nullptr;
  ipam::Ipam* ipam = host.ipam();
  if (eps == nullptr || ipam == nullptr) return okStatus();
  auto gw = ipam->router(IpFamily::kV4);
  if (!gw) return Error(ErrorCode::kFailedPrecondition, "health endpoint: no router address");
  // An endpoint of an earlier run (its namespace went with that agent) is replaced.
  endpoint::Ref ref{endpoint::Ref::Kind::kContainerId, 0, std::string(kHealthOwner), ""};
  if (eps->get(ref)) (void)eps->remove(ref);
  std::optional<IpAddr> gw6 = ip6 ? ipam->router(IpFamily::kV6) : std::nullopt;
  if (ip6 && !gw6)
    return Error(ErrorCode::kFailedPrecondition, "health endpoint: no IPv6 router address");
  CILIUM_ASSIGN_OR_RETURN(HealthLink link, createHealthLink(ip, *gw, 0, ip6, gw6));
  endpoint::Spec spec;
  spec.container_id = std::string(kHealthOwner);
  spec.container_name = std::string(kHealthOwner);
  spec.container_interface_name = "eth0";
  spec.interface_name = kHostIfname;
  spec.ifindex = link.host_ifindex;
  spec.mac = link.pod_mac;
  spec.host_mac = link.host_mac;
  spec.ipv4 = ip;
  if (ip6) spec.ipv6 = *ip6;
  spec.netns = link.netnsPath();
  spec.labels.set(labels::Label(labels::Source::kReserved, "health", ""));
  auto ep = eps->add(spec);
  if (!ep.ok()) {
    (void)datapath::netlink::deleteLink(link.host_ifindex);
    return ep.error().withContext("health endpoint");
  }
  endpoint_id_ = ep->id();
  const Config cfg = host.config<Config>();
  // "::" takes both families (the namespace's sockets are dual stack).
  auto responder = Responder::start(link.netns.get(), ip6 ? "::" : "0.0.0.0",
                                    static_cast<uint16_t>(cfg.cluster_health_port),
                                    host.config<component::NodeConfig>().node_name);
  link_.emplace(std::move(link));
  if (!responder.ok()) return responder.error().withContext("health endpoint");
  endpoint_responder_ = std::move(*responder);
  log()->info("health endpoint ready id={} ip={} ipv6={} identity={}", endpoint_id_, ip.toString(),
              ip6 ? ip6->toString() : "-", ep->identity);
  return okStatus();
}

Status HealthComponent::start(component::Host& host) {
  const Config cfg = host.config<Config>();
  const component::NodeConfig nc = host.config<component::NodeConfig>();
  if (!cfg.enable_health_checking) return okStatus();
  const auto port = static_cast<uint16_t>(cfg.cluster_health_port);
  // The node's health server: what other nodes' host probes reach. Not fatal (as in Cilium):
  // with the port taken the agent runs on, and the other nodes see its HTTP probe fail.
  // Dual stack: "::" answers the other nodes' probes of both families.
  const bool dual = host.ipam() != nullptr && host.ipam()->enabled(IpFamily::kV6);
  if (auto r = Responder::start(-1, dual ? "::" : "0.0.0.0", port, nc.node_name); r.ok())
    node_responder_ = std::move(*r);
  else
    log()->warn("health server not started: {}", r.error().message());

  std::optional<IpAddr> health_ip, health_ip6;
  if (cfg.enable_endpoint_health_checking && host.ipam() != nullptr &&
      !host.ipam()->enabled(IpFamily::kV4))
    // The health endpoint and its probes speak IPv4 only (IPv6 health probes are not built).
    log()->warn(
        "health endpoint not started: it needs IPv4 (enable-ipv4=false); node probes still run");
  if (cfg.enable_endpoint_health_checking && host.ipam() != nullptr &&
      host.ipam()->enabled(IpFamily::kV4)) {
    health_ip = healthAddress(*host.ipam(), IpFamily::kV4);
    if (dual) health_ip6 = healthAddress(*host.ipam(), IpFamily::kV6);
    if (health_ip) {
      if (Status st = startEndpoint(host, *health_ip, health_ip6); !st.ok()) {
        // The agent runs without it: the other nodes see this node's endpoint unreachable.
        log()->warn("health endpoint not started: {}", st.error().message());
        endpoint_responder_.reset();
        if (endpoint_id_ != 0 && deps_.endpoints && deps_.endpoints() != nullptr)
          (void)deps_.endpoints()->remove(
              endpoint::Ref{endpoint::Ref::Kind::kId, endpoint_id_, "", ""});
        endpoint_id_ = 0;
        link_.reset();
        health_ip6.reset();
      }
    }
  }

  probes_ = std::make_unique<NetProbes>(link_ ? link_->netns.get() : -1);
  ProberOptions po;
  po.local = nc.node_name;
  po.cluster = nc.cluster_name;
  po.port = port;
  po.interval = cfg.health_check_interval;
  po.timeout = std::min(cfg.health_check_interval, std::chrono::milliseconds(2000));
  po.endpoint_source_ready = [this] { return endpoint_responder_ != nullptr; };
  prober_ = std::make_unique<Prober>(*probes_, po);
  shared_->prober = prober_.get();

  auto nodes = deps_.nodes;
  std::string local = nc.node_name;
  auto targets = [nodes, local, health_ip, health_ip6]() {
    std::vector<Target> t = targetsOf(nodes ? nodes() : std::vector<node::Node>{}, local);
    // Without the cluster (standalone) this node is still a target: its health endpoint.
    bool have_local = std::any_of(t.begin(), t.end(), [](const Target& x) { return x.local; });
    if (!have_local && health_ip)
      t.insert(t.begin(), Target{local, true, std::nullopt, health_ip, std::nullopt, health_ip6});
    return t;
  };

  auto& router = host.router();
  std::shared_ptr<Shared> shared = shared_;
  CILIUM_RETURN_IF_ERROR(router.add(api::Method::kGet, "/v1/health/status",
                                    [shared](const api::Request&) -> Result<api::Response> {
                                      return api::Response::json(toJson(shared->last()));
                                    }));
  Prober* prober = prober_.get();
  CILIUM_RETURN_IF_ERROR(
      router.add(api::Method::kPut, "/v1/health/status/probe",
                 [prober, targets](const api::Request&) -> Result<api::Response> {
                   return api::Response::json(toJson(prober->probe(targets())));
                 }));
  host.addStatusProvider([shared](api::StatusResponse& s) {
    Report r = shared->last();
    if (!s.cluster) s.cluster = api::ClusterStatus{};
    api::ComponentStatus c;
    c.state = api::StatusState::kOk;
    c.msg = summaryText(r);
    s.cluster->cilium_health = c;
  });
  if (deps_.registry != nullptr) {
    auto add = [&](std::string name, std::string help, std::vector<std::string> labels,
                   std::vector<ConnectivitySample> (*fn)(const Report&)) -> Status {
      metrics::MetricDesc d{std::move(name), std::move(help), metrics::MetricType::kGauge,
                            std::move(labels)};
      return deps_.registry->addCollector(d, [shared, fn](metrics::SampleSink& sink) {
        for (const auto& s : fn(shared->last())) sink.add(s.labels, s.value);
      });
    };
    Status st = add("cilium_node_connectivity_status",
                    "The last observed status of both ICMP and HTTP connectivity between the "
                    "current Cilium agent and other Cilium nodes (1 reachable, 0 not)",
                    kStatusLabels, &connectivityStatus);
    // Registered once per registry: a second agent start in one process keeps the first.
    if (!st.ok() && st.error().code() != ErrorCode::kAlreadyExists) return st;
    st = add("cilium_node_connectivity_latency_seconds",
             "The last observed latency between the current Cilium agent and other Cilium nodes "
             "in seconds",
             kLatencyLabels, &connectivityLatency);
    if (!st.ok() && st.error().code() != ErrorCode::kAlreadyExists) return st;
  }
  prober_->start(targets);
  log()->info("health checking started interval={} port={} endpoint={}",
              durationText(cfg.health_check_interval), port,
              health_ip && endpoint_responder_ ? health_ip->toString() : "none");
  return okStatus();
}

void HealthComponent::stop() {
  if (prober_) prober_->stop();
  {
    std::lock_guard lock(shared_->mu);
    shared_->prober = nullptr;
  }
  endpoint_responder_.reset();
  if (endpoint_id_ != 0 && deps_.endpoints) {
    if (endpoint::Manager* eps = deps_.endpoints(); eps != nullptr) {
      auto r = eps->remove(endpoint::Ref{endpoint::Ref::Kind::kId, endpoint_id_, "", ""});
      if (!r.ok()) log()->warn("removing the health endpoint: {}", r.error().message());
    }
    endpoint_id_ = 0;
  }
  link_.reset();
  node_responder_.reset();
  prober_.reset();
  probes_.reset();
}

}  // namespace cilium::health
