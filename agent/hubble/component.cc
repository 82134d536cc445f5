// Hubble's lifecycle inside the agent.
#include "agent/hubble/component.h"

#include <fmt/format.h>

#include "agent/common/log.h"
#include "agent/hubble/metrics.h"
#include "agent/hubble/metrics_spec.h"

namespace cilium::hubble {

namespace {

auto log() {
  static auto l = cilium::logger("hubble");
  return l;
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace

ComponentOptions componentOptions(const Config& cfg, std::string node_name, std::string version,
                                  std::string cluster_name) {
  ComponentOptions o;
  o.enabled = cfg.enable_hubble;
  o.pipeline.node_name = absoluteNodeName(cluster_name, node_name);
  o.pipeline.ring_capacity = cfg.hubble_event_buffer_capacity;
  o.pipeline.queue_size = cfg.hubble_event_queue_size;
  o.server.unix_socket = cfg.hubble_socket_path;
  o.server.tcp_address = cfg.hubble_listen_address;
  o.server.version = std::move(version);
  o.server.cluster_name = cluster_name;
  o.metrics = cfg.hubble_metrics;
  if (!cfg.hubble_disable_tls) {
    o.server.tls.enabled = true;
    o.server.tls.cert_file = cfg.hubble_tls_cert_file;
    o.server.tls.key_file = cfg.hubble_tls_key_file;
    o.server.tls.client_ca_files = splitList(cfg.hubble_tls_client_ca_files);
    o.server.tls.server_name = hubbleTlsServerName(cluster_name, node_name);
    if (!o.server.tcp_address.empty() &&
        (cfg.hubble_tls_cert_file.empty() || cfg.hubble_tls_key_file.empty())) {
      o.tcp_off_reason = fmt::format(
          "TCP listener {} off: TLS is on and hubble-tls-cert-file/hubble-tls-key-file are not "
          "set (or set hubble-disable-tls)",
          o.server.tcp_address);
      o.server.tcp_address.clear();
    }
  }
  return o;
}

HubbleComponent::HubbleComponent(ComponentOptions opts, const EndpointResolver* endpoints,
                                 const IdentityResolver* identities, metrics::Registry* registry)
    : opts_(std::move(opts)), registry_(registry) {
  opts_.pipeline.services = &services_;
  pipeline_ = std::make_unique<FlowPipeline>(opts_.pipeline, endpoints, identities);
}

HubbleComponent::~HubbleComponent() { stop(); }

Status HubbleComponent::start(component::Host& host) {
  if (!opts_.enabled) {
    host.addStatusProvider([](api::StatusResponse& s) {
      s.hubble = api::HubbleStatus{api::StatusState::kDisabled, "", std::nullopt};
    });
    return okStatus();
  }
  CILIUM_ASSIGN_OR_RETURN(auto spec, parseMetricsSpec(opts_.metrics));
  if (registry_) CILIUM_RETURN_IF_ERROR(registerHubbleMetrics(*registry_, *pipeline_, spec));
  if (!opts_.tcp_off_reason.empty()) log()->warn("{}", opts_.tcp_off_reason);
  CILIUM_RETURN_IF_ERROR(pipeline_->start());
  server_ = std::make_unique<HubbleServer>(*pipeline_, opts_.server);
  auto st = server_->start();
  if (!st.ok()) {
    server_.reset();
    pipeline_->stop();
    return st;
  }
  flow::AgentEvent started;
  started.set_type(flow::AGENT_STARTED);
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  started.mutable_agent_start()->mutable_time()->set_seconds(now / 1000000000);
  started.mutable_agent_start()->mutable_time()->set_nanos(static_cast<int32_t>(now % 1000000000));
  pipeline_->addAgentEvent(std::move(started));
  if (service_source_) {
    refreshServices();
    {
      std::lock_guard lock(refresh_mu_);
      stopping_ = false;
    }
    refresher_ = std::thread([this] {
      std::unique_lock lock(refresh_mu_);
      while (!refresh_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; })) {
        lock.unlock();
        refreshServices();
        lock.lock();
      }
    });
  }
  FlowPipeline* p = pipeline_.get();
  const HubbleServer* srv = server_.get();
  std::string note = opts_.tcp_off_reason;
  host.addStatusProvider([p, srv, note](api::StatusResponse& s) {
    auto st = p->stats();
    api::HubbleObserverStatus obs;
    obs.max_flows = static_cast<int64_t>(p->ring().capacity());
    obs.current_flows = static_cast<int64_t>(p->ring().size());
    obs.seen_flows = static_cast<int64_t>(st.seen_flows);
    obs.uptime = fmt::format("{}s", std::chrono::duration_cast<std::chrono::seconds>(st.uptime).count());
    std::string msg = srv->tcpPort() > 0 ? fmt::format("Listening on {}", srv->options().tcp_address)
                                         : "Listening on " + srv->options().unix_socket;
    if (!note.empty()) msg += "; " + note;
    uint64_t lost = st.queue_lost + st.datapath_lost;
    if (lost > 0) msg += fmt::format("; {} events lost", lost);
    s.hubble = api::HubbleStatus{api::StatusState::kOk, msg, obs};
  });
  return okStatus();
}

void HubbleComponent::refreshServices() { services_.replaceServices(service_source_()); }

void HubbleComponent::stop() {
  {
    std::lock_guard lock(refresh_mu_);
    stopping_ = true;
  }
  refresh_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  server_.reset();
  pipeline_->stop();
}

}  // namespace cilium::hubble
