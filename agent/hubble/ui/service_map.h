// Hubble UI's service map over a set of flows: workloads as nodes grouped by namespace, one edge
// per (source, destination, protocol, port) with how many flows were forwarded and dropped and
// the L7 requests seen on it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "agent/hubble/proto.h"

namespace cilium::hubble::ui {

// What a flow's side is on the map: `id` is "namespace/name" for pods ("reserved:world" style
// for reserved identities, the address for anything else).
struct MapEndpoint {
  std::string id, ns, name;
  std::string kind;  // "workload", "reserved", "ip"
};

// The workload an endpoint belongs to: its first workload's name, else one of the name labels
// Kubernetes manifests set (app.kubernetes.io/name, k8s-app, app, class), else the pod name;
// a reserved identity by its label (world, host, ...); else the address.
MapEndpoint mapEndpoint(const flow::Endpoint& ep, const std::string& ip);

class ServiceMap {
 public:
  // Adds one flow. Replies (is_reply) and flows without an IP layer draw no edge: a connection
  // is one edge, from its initiator.
  void add(const flow::Flow& f);
  // {"nodes": [{id, namespace, name, kind, flows}], "edges": [{from, to, protocol, port,
  //  forwarded, dropped, verdict ("forwarded", "dropped" or "mixed"), l7: [...]}]}, sorted.
  nlohmann::json toJson() const;

 private:
  struct Node {
    MapEndpoint ep;
    uint64_t flows = 0;
  };
  struct Edge {
    uint64_t forwarded = 0, dropped = 0;
    std::set<std::string> l7;
  };
  using EdgeKey = std::tuple<std::string, std::string, std::string, uint32_t>;
  std::map<std::string, Node> nodes_;
  std::map<EdgeKey, Edge> edges_;
};

}  // namespace cilium::hubble::ui
