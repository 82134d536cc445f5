// ObservabilityComponent: Hubble and metrics wired to the control plane. The decoder thread never
// takes a control-plane lock (a regeneration holds the manager's lock across fsyncs): it reads
// immutable snapshots that a refresher thread rebuilds when endpoints regenerate, and identity
// labels that the allocator's observer keeps current.
#include "agent/daemon/observability.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include "agent/common/log.h"
#include "agent/daemon/control_plane.h"
#include "agent/datapath/datapath.h"
#include "agent/endpoint/manager.h"
#include "agent/fqdn/dns_proxy.h"
#include "agent/fqdn/name_manager.h"
#include "agent/hubble/pipeline.h"
#include "agent/hubble/resolver.h"
#include "agent/identity/allocator.h"
#include "agent/ipam/ipam.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/metrics/registry.h"
#include "agent/monitor/event_hub.h"
#include "agent/policy/policy.h"
#include "agent/proxy/manager.h"

namespace cilium::daemon {
namespace {

auto& log() {
  static auto l = logger("observability");
  return l;
}

std::vector<std::string> labelStrings(const labels::Labels& labels) {
  std::vector<std::string> out;
  for (const auto& l : labels) out.push_back(l.toString());
  return out;
}

struct EndpointSnapshot {
  std::map<uint32_t, std::shared_ptr<const hubble::EndpointInfo>> by_id;
  std::map<IpAddr, std::shared_ptr<const hubble::EndpointInfo>> by_ip;
  std::map<std::string, double> states;       // endpoint_state -> count
  std::map<std::string, double> enforcement;  // none|ingress|egress|both -> count
};

}  // namespace

struct ObservabilityComponent::Impl final : public hubble::EndpointResolver,
                                            public hubble::IdentityResolver,
                                            public hubble::NameResolver {
  Impl(ControlPlaneComponent& control_plane, metrics::Registry& r)
      : cp_component(control_plane), registry(r) {}
  ~Impl() override {
    if (cp != nullptr) stop(*cp);
  }

  Status start(ControlPlane& c, hubble::FlowPipeline* pipeline,
               std::function<std::vector<std::pair<std::string, double>>()> pressure);
  void stop(ControlPlane& c);

  ControlPlaneComponent& cp_component;
  hubble::FlowPipeline* configured_pipeline = nullptr;  // setFlowPipeline()
  ControlPlane* cp = nullptr;
  // cilium_proxy_upstream_reply_seconds (the DNS proxy's records); null without a DNS proxy.
  metrics::Family<metrics::Histogram>* dns_reply_seconds = nullptr;
  std::function<std::vector<std::pair<std::string, double>>()> map_pressure;
  std::function<ipam::Ipam*()> ipam;  // the host's IPAM (nullptr while no pod CIDR is known)
  metrics::Registry& registry;
  hubble::FlowPipeline* pipeline = nullptr;
  std::unique_ptr<metrics::AgentMetrics> agent_metrics;
  std::optional<monitor::EventHub::Subscription> subscription;
  uint64_t identity_subscription = 0;
  bool identities_subscribed = false;

  // Other nodes' pods (setRemoteEndpoints); held shared while a lookup runs.
  mutable std::shared_mutex remote_mu;
  ObservabilityComponent::RemoteLookup remote;

  mutable std::mutex snap_mu;
  std::shared_ptr<const EndpointSnapshot> snapshot = std::make_shared<EndpointSnapshot>();
  std::map<uint32_t, std::shared_ptr<const std::vector<std::string>>> identity_labels;  // snap_mu

  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool refresh_wanted = true;
  bool stopping = false;
  std::thread refresher;

  std::shared_ptr<const EndpointSnapshot> current() const {
    std::lock_guard lock(snap_mu);
    return snapshot;
  }

  std::shared_ptr<const hubble::EndpointInfo> endpointById(uint32_t id) const override {
    auto s = current();
    auto it = s->by_id.find(id);
    return it == s->by_id.end() ? nullptr : it->second;
  }
  std::shared_ptr<const hubble::EndpointInfo> endpointByIp(const IpAddr& ip) const override {
    auto s = current();
    auto it = s->by_ip.find(ip);
    if (it != s->by_ip.end()) return it->second;
    std::shared_lock lock(remote_mu);
    return remote ? remote(ip) : nullptr;
  }
  std::shared_ptr<const std::vector<std::string>> identityLabels(uint32_t identity) const override {
    std::lock_guard lock(snap_mu);
    auto it = identity_labels.find(identity);
    return it == identity_labels.end() ? nullptr : it->second;
  }

  // Hubble's decoder runs between start() and stop() of this component (Hubble starts after it
  // and stops before it), so `cp` is stable while it asks.
  std::vector<std::string> namesOf(uint32_t endpoint_id, const IpAddr& ip) const override {
    fqdn::NameManager* names = cp ? cp->fqdnNames() : nullptr;
    return names ? names->namesOf(endpoint_id, ip) : std::vector<std::string>{};
  }

  void rebuild() {
    auto next = std::make_shared<EndpointSnapshot>();
    for (const auto& ep : cp->endpoints().list()) {
      auto info = std::make_shared<hubble::EndpointInfo>();
      info->id = ep.id();
      info->identity = ep.identity;
      info->pod_name = ep.spec.pod_name;
      info->pod_namespace = ep.spec.pod_namespace;
      info->labels = labelStrings(ep.spec.labels);
      info->ifindex = static_cast<uint32_t>(ep.spec.ifindex);
      info->interface_name = ep.spec.interface_name;
      next->states[std::string(endpoint::stateName(ep.state))] += 1;
      const char* enforcement = ep.ingress_enforced ? (ep.egress_enforced ? "both" : "ingress")
                                                    : (ep.egress_enforced ? "egress" : "none");
      next->enforcement[enforcement] += 1;
      // Both families: a dual-stack or IPv6-only pod's IPv6 flows name it too.
      for (const auto* ip : {&ep.spec.ipv4, &ep.spec.ipv6})
        if (*ip) next->by_ip[**ip] = info;
      next->by_id[info->id] = std::move(info);
    }
    std::lock_guard lock(snap_mu);
    snapshot = std::move(next);
  }

  void requestRefresh() {
    std::lock_guard lock(refresh_mu);
    refresh_wanted = true;
    refresh_cv.notify_one();
  }

  // Rebuilds after regenerations (coalesced), and once a second for anything else that changed.
  void refreshLoop() {
    std::unique_lock lock(refresh_mu);
    while (!stopping) {
      refresh_cv.wait_for(lock, std::chrono::seconds(1),
                          [&] { return stopping || refresh_wanted; });
      if (stopping) break;
      refresh_wanted = false;
      lock.unlock();
      rebuild();
      lock.lock();
    }
  }

  Status registerMetrics() {
    ControlPlane* c = cp;
    auto pressure = map_pressure;
    CILIUM_RETURN_IF_ERROR(
        metrics::addDatapathMetrics(registry, {[c] { return c->datapath().readMetrics(); },
                                               [c] { return c->datapath().eventCounters(); }}));
    CILIUM_ASSIGN_OR_RETURN(agent_metrics, metrics::AgentMetrics::create(registry));
    auto from_snapshot = [this](std::map<std::string, double> EndpointSnapshot::*field) {
      return [this, field](metrics::SampleSink& sink) {
        for (const auto& [label, n] : (*current()).*field) sink.add({label}, n);
      };
    };
    CILIUM_RETURN_IF_ERROR(
        agent_metrics->setGaugeSource("cilium_endpoint", [this](metrics::SampleSink& sink) {
          sink.add({}, static_cast<double>(current()->by_id.size()));
        }));
    CILIUM_RETURN_IF_ERROR(agent_metrics->setGaugeSource("cilium_endpoint_state",
                                                         from_snapshot(&EndpointSnapshot::states)));
    CILIUM_RETURN_IF_ERROR(
        agent_metrics->setGaugeSource("cilium_policy_endpoint_enforcement_status",
                                      from_snapshot(&EndpointSnapshot::enforcement)));
    CILIUM_RETURN_IF_ERROR(
        agent_metrics->setGaugeSource("cilium_policy", [c](metrics::SampleSink& sink) {
          sink.add({}, static_cast<double>(c->policy().ruleCount()));
        }));
    CILIUM_RETURN_IF_ERROR(
        agent_metrics->setGaugeSource("cilium_policy_max_revision", [c](metrics::SampleSink& sink) {
          sink.add({}, static_cast<double>(c->policy().revision()));
        }));
    CILIUM_RETURN_IF_ERROR(agent_metrics->setGaugeSource(
        "cilium_bpf_map_pressure", [pressure](metrics::SampleSink& sink) {
          for (const auto& [name, ratio] : pressure()) sink.add({name}, ratio);
        }));
    auto ipam_of = ipam;
    CILIUM_RETURN_IF_ERROR(
        agent_metrics->setGaugeSource("cilium_ip_addresses", [ipam_of](metrics::SampleSink& sink) {
          ipam::Ipam* i = ipam_of ? ipam_of() : nullptr;
          if (i == nullptr) return;
          for (const auto& p : i->status())
            sink.add({p.family == IpFamily::kV4 ? "ipv4" : "ipv6"},
                     static_cast<double>(p.allocations.size()));
        }));
    CILIUM_RETURN_IF_ERROR(
        agent_metrics->setGaugeSource("cilium_identity", [c](metrics::SampleSink& sink) {
          std::map<std::string, double> by_type = {
              {"reserved", 0}, {"cluster_local", 0}, {"node_local", 0}};
          for (const auto& e : c->identities().list()) {
            if (e.reserved) {
              by_type["reserved"] += 1;
            } else if ((e.identity.id & identity::kLocalFlag) != 0) {
              by_type["node_local"] += 1;
            } else {
              by_type["cluster_local"] += 1;
            }
          }
          for (const auto& [type, n] : by_type) sink.add({type}, n);
        }));
    return registerFqdnMetrics();
  }

  // The DNS proxy's counters and the FQDN cache's sizes (Cilium's names), read at scrape time.
  Status registerFqdnMetrics() {
    fqdn::DnsProxy* dns = cp->dnsProxy();
    fqdn::NameManager* names = cp->fqdnNames();
    if (dns == nullptr || names == nullptr) return okStatus();
    using metrics::MetricType;
    using metrics::SampleSink;
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {"cilium_policy_l7_total",
         "Number of total proxy requests handled (rule: received, forwarded, denied, "
         "parse_errors; proxy_type fqdn: the DNS proxy)",
         MetricType::kCounter,
         {"rule", "proxy_type"}},
        [dns](SampleSink& sink) {
          auto s = dns->stats();
          // As Cilium counts them: a query and an answer are each received and forwarded (or
          // the query denied); a query that does not parse is a parse error.
          sink.add({"received", "fqdn"}, static_cast<double>(s.queries + s.answers));
          sink.add({"forwarded", "fqdn"}, static_cast<double>(s.allowed + s.answers));
          sink.add({"denied", "fqdn"}, static_cast<double>(s.denied));
          sink.add({"parse_errors", "fqdn"}, static_cast<double>(s.malformed));
        }));
    // Observed by the record handler (start()): each query's time from its arrival to the
    // proxy's answer, labeled as Cilium labels its DNS proxy's (scope totalTime).
    CILIUM_ASSIGN_OR_RETURN(
        dns_reply_seconds,
        registry.histogram("cilium_proxy_upstream_reply_seconds",
                           "Seconds waited for upstream server to reply to a request",
                           {"error", "protocol_l7", "scope"}));
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {"cilium_fqdn_semaphore_rejected_total",
         "Number of DNS requests rejected by the DNS proxy because too many were in flight "
         "(here: TCP connections over the limit)",
         MetricType::kCounter,
         {}},
        [dns](SampleSink& sink) {
          sink.add({}, static_cast<double>(dns->stats().rejected_connections));
        }));
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {"cilium_fqdn_gc_deletions_total",
         "Number of FQDNs that have been cleaned on FQDN garbage collector job",
         MetricType::kCounter,
         {}},
        [names](SampleSink& sink) {
          sink.add({}, static_cast<double>(names->stats().gc_deletions));
        }));
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {"cilium_fqdn_selectors", "Number of registered ToFQDN selectors", MetricType::kGauge, {}},
        [names](SampleSink& sink) {
          sink.add({}, static_cast<double>(names->stats().selectors));
        }));
    CILIUM_RETURN_IF_ERROR(registry.addCollector(
        {"cilium_fqdn_active_names",
         "Number of domains inside the DNS cache that have not expired (by TTL), per endpoint",
         MetricType::kGauge,
         {"endpoint"}},
        [names](SampleSink& sink) {
          std::map<uint16_t, std::set<std::string>> by_ep;
          for (const auto& e : names->entries()) by_ep[e.endpoint_id].insert(e.name);
          for (const auto& [ep, n] : by_ep)
            sink.add({std::to_string(ep)}, static_cast<double>(n.size()));
        }));
    return registry.addCollector(
        {"cilium_fqdn_active_ips",
         "Number of IPs inside the DNS cache associated with a domain that has not expired (by "
         "TTL), per endpoint",
         MetricType::kGauge,
         {"endpoint"}},
        [names](SampleSink& sink) {
          std::map<uint16_t, std::set<IpAddr>> by_ep;
          for (const auto& e : names->entries()) by_ep[e.endpoint_id].insert(e.ip);
          for (const auto& [ep, n] : by_ep)
            sink.add({std::to_string(ep)}, static_cast<double>(n.size()));
        });
  }
};

Status ObservabilityComponent::Impl::start(ControlPlane& c, hubble::FlowPipeline* flow_pipeline,
                     std::function<std::vector<std::pair<std::string, double>>()> pressure) {
  cp = &c;
  map_pressure = std::move(pressure);
  pipeline = flow_pipeline;
  CILIUM_RETURN_IF_ERROR(registerMetrics());
  // The allocator first reports every present identity, then each change.
  identity_subscription =
      c.identities().subscribe([this](const std::vector<identity::IdentityChange>& changes) {
        std::lock_guard lock(snap_mu);
        for (const auto& ch : changes) {
          if (ch.kind == identity::IdentityChange::Kind::kAdded) {
            identity_labels[ch.identity.id] =
                std::make_shared<const std::vector<std::string>>(labelStrings(ch.identity.labels));
          } else {
            identity_labels.erase(ch.identity.id);
          }
        }
      });
  identities_subscribed = true;
  if (auto* changes = agent_metrics->policy_change) {
    c.policy().setOutcomeListener(
        [changes](bool ok) { changes->with({ok ? "success" : "fail"}).inc(); });
  }
  auto* regen_time = agent_metrics->endpoint_regeneration_time_stats;
  auto* regens = agent_metrics->endpoint_regenerations;
  c.endpoints().setRegenerationListener(
      [this, regen_time, regens](const endpoint::RegenerationStat& stat) {
        if (regen_time != nullptr) {
          regen_time->with({"total"}).observe(std::chrono::duration<double>(stat.duration).count());
        }
        if (regens != nullptr) regens->with({stat.ok ? "success" : "failure"}).inc();
        if (pipeline != nullptr) {
          // Hubble's agent events (GetAgentEvents): each endpoint regeneration.
          flow::AgentEvent ev;
          ev.set_type(stat.ok ? flow::ENDPOINT_REGENERATE_SUCCESS
                              : flow::ENDPOINT_REGENERATE_FAILURE);
          ev.mutable_endpoint_regenerate()->set_id(stat.endpoint_id);
          if (auto info = endpointById(stat.endpoint_id))
            for (const auto& l : info->labels) ev.mutable_endpoint_regenerate()->add_labels(l);
          if (!stat.ok) ev.mutable_endpoint_regenerate()->set_error(stat.reason);
          pipeline->addAgentEvent(std::move(ev));
        }
        requestRefresh();
      });
  rebuild();
  {
    std::lock_guard lock(refresh_mu);
    stopping = false;
  }
  refresher = std::thread([this] { refreshLoop(); });
  if (pipeline != nullptr) {
    hubble::FlowPipeline* p = pipeline;
    subscription.emplace(c.events().subscribe([p](const cilium_event& ev) { p->onEvent(ev); }));
    monitor::EventHub* hub = &c.events();
    p->setDrain([hub](std::chrono::milliseconds timeout) { return hub->sync(timeout); });
    // The L7 proxy's access records become L7 flows.
    if (auto* proxy = c.proxyManager())
      proxy->setRecordHandler([p](const proxy::AccessRecord& r) { p->onAccessRecord(r); });
  }
  // The DNS proxy's queries and answers: L7 flows (with Hubble) and the reply-time histogram.
  if (auto* dns = c.dnsProxy()) {
    hubble::FlowPipeline* p = pipeline;
    auto* reply_seconds = dns_reply_seconds;
    dns->setRecordHandler([p, reply_seconds](const fqdn::DnsRecord& r) {
      if (p != nullptr) p->onAccessRecord(fqdn::toAccessRecord(r));
      if (reply_seconds == nullptr || (r.allowed && r.kind == fqdn::DnsRecord::Kind::kQuery))
        return;
      std::string error = !r.allowed                               ? "denied"
                          : r.upstream_timed_out                   ? "timeout"
                          : r.upstream_failed || r.not_enforceable ? "proxyErr"
                                                                   : "allow";
      reply_seconds->with({error, "dns", "totalTime"})
          .observe(std::chrono::duration<double>(r.latency).count());
    });
  }
  log()->info("hubble={} metrics=on", pipeline != nullptr ? "on" : "off");
  return okStatus();
}

void ObservabilityComponent::Impl::stop(ControlPlane& c) {
  if (pipeline != nullptr) pipeline->setDrain(nullptr);
  if (auto* proxy = c.proxyManager()) proxy->setRecordHandler(nullptr);
  if (auto* dns = c.dnsProxy()) dns->setRecordHandler(nullptr);
  subscription.reset();
  {
    std::lock_guard lock(refresh_mu);
    stopping = true;
    refresh_cv.notify_all();
  }
  if (refresher.joinable()) refresher.join();
  c.endpoints().setRegenerationListener(nullptr);
  c.policy().setOutcomeListener(nullptr);
  if (identities_subscribed) c.identities().unsubscribe(identity_subscription);
  identities_subscribed = false;
  cp = nullptr;
}

ObservabilityComponent::ObservabilityComponent(ControlPlaneComponent& control_plane,
                                               metrics::Registry& agent_registry)
    : impl_(std::make_unique<Impl>(control_plane, agent_registry)) {}

ObservabilityComponent::~ObservabilityComponent() { stop(); }

void ObservabilityComponent::setFlowPipeline(hubble::FlowPipeline* pipeline) {
  impl_->configured_pipeline = pipeline;
}
const hubble::EndpointResolver* ObservabilityComponent::endpointResolver() const {
  return impl_.get();
}
const hubble::IdentityResolver* ObservabilityComponent::identityResolver() const {
  return impl_.get();
}
const hubble::NameResolver* ObservabilityComponent::nameResolver() const { return impl_.get(); }
metrics::AgentMetrics* ObservabilityComponent::agentMetrics() {
  return impl_->agent_metrics.get();
}

void ObservabilityComponent::setRemoteEndpoints(RemoteLookup lookup) {
  std::unique_lock lock(impl_->remote_mu);
  impl_->remote = std::move(lookup);
}

Status ObservabilityComponent::start(Host& host) {
  ControlPlane* cp = impl_->cp_component.controlPlane();
  if (cp == nullptr) {
    return makeError(ErrorCode::kFailedPrecondition,
                     "observability needs the control plane started first");
  }
  impl_->ipam = [&host] { return host.ipam(); };
  return impl_->start(*cp, impl_->configured_pipeline, [&host] { return host.mapPressure(); });
}

void ObservabilityComponent::stop() {
  if (!impl_ || impl_->cp == nullptr) return;
  // Components stop in reverse order, so the control plane is still running here.
  impl_->stop(*impl_->cp);
}

}  // namespace cilium::daemon
