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

// The health endpoint's address of `family`: the one reserved in an earlier run (IPAM restores
// it), else a new one. nullopt (logged) when none is free.
std::optional<IpAddr> healthAddress(ipam::Ipam& ipam, IpFamily family) {
  if (auto held = ipam.addressOf(family, health::kHealthOwner)) return held;
  auto lease = ipam.allocateNext(family, health::kHealthOwner);
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
  if (cfg.enable_ipv6) rc.fixed_ipv6 = cfg.ipv6_range;
  CILIUM_ASSIGN_OR_RETURN(registration_,
                          node::Registration::start(*client, source_.source()->stores(), rc));
  if (host.ipam() == nullptr) {
    // Each enabled family's pod CIDR from the cluster (cluster-pool: the operator's
    // cluster-pool-ipv4-cidr / cluster-pool-ipv6-cidr; kubernetes: Node.spec.podCIDRs).
    std::optional<IpPrefix> cidrs[2];
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      if (!(f == IpFamily::kV4 ? cfg.enable_ipv4 : cfg.enable_ipv6)) continue;
      auto cidr = registration_->waitForPodCidr(std::chrono::seconds(cfg.k8s_sync_timeout),
                                                std::chrono::seconds(5), f);
      if (!cidr.ok()) return cidr.error();
      cidrs[f == IpFamily::kV4 ? 0 : 1] = *cidr;
    }
    CILIUM_RETURN_IF_ERROR(host.openIpam(cidrs[0], cidrs[1]));
  }
  ipam::Ipam* ipam = host.ipam();
  node::LocalAddresses la;
  if (ipam != nullptr && ipam->enabled(IpFamily::kV4)) {
    la.router_ipv4 = ipam->router(IpFamily::kV4);
    la.pod_cidr_ipv4 = ipam->cidr(IpFamily::kV4);
    la.health_ipv4 = healthAddress(*ipam, IpFamily::kV4);
  }
  if (ipam != nullptr && ipam->enabled(IpFamily::kV6)) {
    la.pod_cidr_ipv6 = ipam->cidr(IpFamily::kV6);
    la.router_ipv6 = ipam->router(IpFamily::kV6);
    // The health endpoint is dual stack then (agent/health).
    la.health_ipv6 = healthAddress(*ipam, IpFamily::kV6);
  }
  if (Status st = registration_->setAddresses(la); !st.ok())
    log()->warn("CiliumNode {}: publishing addresses failed, retrying: {}", cfg.node_name,
                st.error().message());
  else
    log()->info(
        "CiliumNode {} up to date router={} health={} pod_cidr={} health_ipv6={} "
        "pod_cidr_ipv6={}",
        cfg.node_name, la.router_ipv4 ? la.router_ipv4->toString() : "-",
        la.health_ipv4 ? la.health_ipv4->toString() : "-",
        la.pod_cidr_ipv4 ? la.pod_cidr_ipv4->toString() : "-",
        la.health_ipv6 ? la.health_ipv6->toString() : "-",
        la.pod_cidr_ipv6 ? la.pod_cidr_ipv6->toString() : "-");
  return okStatus();
}

void NodeComponent::stop() { registration_.reset(); }

}  // namespace cilium::daemon
