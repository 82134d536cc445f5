// The service map: flows -> workload nodes and edges.
#include "agent/hubble/ui/service_map.h"

#include "agent/hubble/decoder.h"

namespace cilium::hubble::ui {

namespace {

std::string labelValue(const flow::Endpoint& ep, std::string_view key) {
  for (const auto& l : ep.labels()) {
    // "k8s:app=web": the source prefix, then key=value.
    auto colon = l.find(':');
    std::string_view kv =
        colon == std::string::npos ? std::string_view(l) : std::string_view(l).substr(colon + 1);
    if (kv.size() > key.size() && kv.substr(0, key.size()) == key && kv[key.size()] == '=')
      return std::string(kv.substr(key.size() + 1));
  }
  return "";
}

}  // namespace

MapEndpoint mapEndpoint(const flow::Endpoint& ep, const std::string& ip) {
  MapEndpoint m;
  if (!ep.pod_name().empty()) {
    m.kind = "workload";
    m.ns = ep.namespace_();
    if (ep.workloads_size() > 0 && !ep.workloads(0).name().empty()) m.name = ep.workloads(0).name();
    for (const char* key : {"app.kubernetes.io/name", "k8s-app", "app", "class"}) {
      if (!m.name.empty()) break;
      m.name = labelValue(ep, key);
    }
    if (m.name.empty()) m.name = ep.pod_name();
    m.id = m.ns + "/" + m.name;
    return m;
  }
  for (const auto& l : ep.labels()) {
    if (l.starts_with("reserved:")) {
      m.kind = "reserved";
      m.name = l.substr(9);
      m.id = l;
      return m;
    }
  }
  m.kind = "ip";
  m.name = ip.empty() ? "unknown" : ip;
  m.id = m.name;
  return m;
}

void ServiceMap::add(const flow::Flow& f) {
  if (!f.has_ip()) return;
  if (f.has_is_reply() && f.is_reply().value()) return;
  auto src = mapEndpoint(f.source(), f.ip().source());
  auto dst = mapEndpoint(f.destination(), f.ip().destination());
  for (const auto* ep : {&src, &dst}) {
    auto& n = nodes_[ep->id];
    n.ep = *ep;
    ++n.flows;
  }
  std::string proto;
  switch (f.l4().protocol_case()) {
    case flow::Layer4::kTCP: proto = "TCP"; break;
    case flow::Layer4::kUDP: proto = "UDP"; break;
    case flow::Layer4::kSCTP: proto = "SCTP"; break;
    case flow::Layer4::kICMPv4: proto = "ICMPv4"; break;
    case flow::Layer4::kICMPv6: proto = "ICMPv6"; break;
    default: proto = "IP"; break;
  }
  auto& e = edges_[{src.id, dst.id, proto, destinationPort(f)}];
  if (f.verdict() == flow::DROPPED)
    ++e.dropped;
  else
    ++e.forwarded;
  if (f.has_l7() && f.l7().has_http() && f.l7().type() == flow::REQUEST && e.l7.size() < 20)
    e.l7.insert(f.l7().http().method() + " " + f.l7().http().url());
}

nlohmann::json ServiceMap::toJson() const {
  auto nodes = nlohmann::json::array();
  for (const auto& [id, n] : nodes_)
    nodes.push_back({{"id", id},
                     {"namespace", n.ep.ns},
                     {"name", n.ep.name},
                     {"kind", n.ep.kind},
                     {"flows", n.flows}});
  auto edges = nlohmann::json::array();
  for (const auto& [k, e] : edges_) {
    const auto& [from, to, proto, port] = k;
    edges.push_back({{"from", from},
                     {"to", to},
                     {"protocol", proto},
                     {"port", port},
                     {"forwarded", e.forwarded},
                     {"dropped", e.dropped},
                     {"verdict", e.dropped == 0     ? "forwarded"
                                 : e.forwarded == 0 ? "dropped"
                                                    : "mixed"},
                     {"l7", e.l7}});
  }
  return {{"nodes", nodes}, {"edges", edges}};
}

}  // namespace cilium::hubble::ui
