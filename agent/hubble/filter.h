// Hubble's flow filters: GetFlowsRequest whitelist/blacklist (flow.FlowFilter) compiled once per
// request into predicates. Semantics are Hubble's: the fields set in one FlowFilter must all match
// (AND), any value of a repeated field may match (OR), a flow passes the whitelist when one of its
// filters matches (an empty whitelist passes everything) and is removed when one blacklist filter
// matches.
//
//   source_pod / destination_pod   "namespace/pod-prefix", "pod-prefix" (any namespace) or
//                                  "namespace/" (the whole namespace)
//   source_ip / destination_ip     an address or a CIDR
//   source_label / ...             a Kubernetes label selector ("app=web,env in (a,b),!debug");
//                                  a key without "source:" matches any source
//   source_port / ...              a port number
//   protocol                       tcp, udp, sctp, icmp (v4 or v6), icmpv4, icmpv6, http, dns
//   event_type                     monitor type (1 drop, 4 trace, 5 policy verdict), subtype
//   source_service / ...           "namespace/name-prefix", as pods, over the flow's Service
//   source_workload / ...          name and/or kind, over the endpoint's workloads
//   source_fqdn / ...              DNS name patterns ("*.example.com") over source_names
//   http_status_code               "404", or a prefix "4+" / "40+" (L7 HTTP responses)
//   http_method, http_path         method (any case); RE2 pattern over the URL's path
//   dns_query                      RE2 pattern over the L7 DNS query
//   trace_id                       the flow's trace context
//   verdict, traffic_direction, reply, source_identity, destination_identity, tcp_flags,
//   node_name (with * wildcards), ip_version, drop_reason_desc, uuid
// A field matches only flows that carry what it asks about: an L7 field never matches an L3/L4
// flow, an fqdn never matches a flow without names. Invalid values (a bad CIDR, port, selector,
// pattern or status code, an unknown protocol) are kInvalidArgument naming the field, never a
// filter that silently matches nothing. A filter carrying a field this agent does not know (the
// protobuf parser keeps it as an unknown field) is refused: dropping it would widen the filter.
#pragma once

#include <functional>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/proto.h"
#include "agent/labels/selector.h"

namespace cilium::hubble {

using FlowPredicate = std::function<bool(const flow::Flow&)>;

// One FlowFilter: every predicate must hold.
Result<FlowPredicate> compileFilter(const flow::FlowFilter& filter);

class FlowFilters {
 public:
  FlowFilters() = default;  // passes everything
  static Result<FlowFilters> compile(
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
      const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist);
  bool allows(const flow::Flow& f) const;

 private:
  std::vector<FlowPredicate> whitelist_;
  std::vector<FlowPredicate> blacklist_;
};

// "app=web,tier!=db,env in (a,b),env notin (c),debug,!legacy": the Kubernetes selector text.
// Keys may carry a source ("k8s:app=web"); without one they match every source.
Result<labels::LabelSelector> parseSelectorText(std::string_view text);

}  // namespace cilium::hubble
