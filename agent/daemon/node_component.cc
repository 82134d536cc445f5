// NodeComponent: this node's CiliumNode, its pod CIDR from the cluster, IPAM opened on it.
#include "agent/daemon/node_component.h"

#include "agent/common/log.h"
#include "agent/daemon/k8s_component.h"
#include "agent/health/config.h"
#include "agent/k8s/source.h"
#include "agent/node/registration.h"

namespace cilium::daemon {
namespace {

auto& log() {
  static auto l = cilium::logger("node");
  return l;
}

// The health endpoint's address: the one reserved in an earlier run (IPAM restores it), else a
// new one. nullopt (logged) when none is free.
std::optional<IpAddr> healthAddress(ipam::Ipam& ipam) {
  if (auto held = ipam.addressOf(IpFamily::kV4, health::kHealthOwner)) return held;
  auto lease = ipam.allocateNext(IpFamily::kV4, health::kHealthOwner);
  if (!lease.ok()) {
    log()->warn("no address for the health endpoint: {}", lease.error().message());
    return std::nullopt;
  }
  return lease->ip;
}

}  // namespace

NodeComponent::NodeComponent(K8sSourceComponent& source) : source_(source) {}
NodeComponent::~NodeComponent() = default;

Status NodeComponent::start(Host& host) {
  k8s::Client* client = source_.client();
  if (client == nullptr || source_.source() == nullptr) return okStatus();
  Config cfg = host.config<Config>();
  node::RegistrationConfig rc;
  rc.node_name = cfg.node_name;
  rc.ipam = cfg.ipam;
  if (cfg.enable_ipv4) rc.fixed_ipv4 = cfg.ipv4_range;
  CILIUM_ASSIGN_OR_RETURN(registration_,
                          node::Registration::start(*client, source_.source()->stores(), rc));
  if (host.ipam() == nullptr) {
    if (!cfg.enable_ipv4)
      return makeError(ErrorCode::kInvalidArgument,
                       "ipam={} learns IPv4 pod CIDRs only: enable-ipv4, or give ipv6-range",
                       cfg.ipam);
    auto cidr = registration_->waitForPodCidr(std::chrono::seconds(cfg.k8s_sync_timeout));
    if (!cidr.ok()) return cidr.error();
    CILIUM_RETURN_IF_ERROR(host.openIpam(*cidr, std::nullopt));
  }
  ipam::Ipam* ipam = host.ipam();
  node::LocalAddresses la;
  if (ipam != nullptr && ipam->enabled(IpFamily::kV4)) {
    la.router_ipv4 = ipam->router(IpFamily::kV4);
    la.pod_cidr_ipv4 = ipam->cidr(IpFamily::kV4);
    la.health_ipv4 = healthAddress(*ipam);
  }
  if (Status st = registration_->setAddresses(la); !st.ok())
    log()->warn("CiliumNode {}: publishing addresses failed, retrying: {}", cfg.node_name,
                st.error().message());
  else
    log()->info("CiliumNode {} up to date router={} health={} pod_cidr={}", cfg.node_name,
                la.router_ipv4 ? la.router_ipv4->toString() : "-",
                la.health_ipv4 ? la.health_ipv4->toString() : "-",
                la.pod_cidr_ipv4 ? la.pod_cidr_ipv4->toString() : "-");
  return okStatus();
}

void NodeComponent::stop() { registration_.reset(); }

}  // namespace cilium::daemon
