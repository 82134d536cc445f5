// Hubble's flow metrics (hubble_*), with Hubble's names and labels, fed by a FlowPipeline:
//   hubble_flows_processed_total{type,subtype,verdict}   type Trace|Drop|PolicyVerdict
//   hubble_drop_total{reason,protocol}                   reason as flow.DropReason names
//   hubble_tcp_flags_total{flag,family}                  SYN, SYN-ACK, FIN, RST
//   hubble_port_distribution_total{protocol,port}        destination ports of requests
//   hubble_policy_verdicts_total{direction,action,match}
//   hubble_icmp_total{family,type}
//   hubble_lost_events_total{source}                     perf_event_ring_buffer,
//                                                        observer_events_queue, hubble_ring_buffer
// hubble-metrics (agent/hubble/metrics_spec.h) chooses the flow metrics (lost events are always
// counted) and adds context labels after each metric's own: `source`, `destination` and the
// labelsContext labels, in that order.
#pragma once

#include "agent/common/error.h"
#include "agent/hubble/metrics_spec.h"
#include "agent/hubble/pipeline.h"
#include "agent/metrics/registry.h"

namespace cilium::hubble {

// Registers the families in `registry` and observers on `pipeline` (before pipeline.start()).
// The registry must outlive the pipeline. The observers keep each series' counter by a key of
// integers from the flow (enum values, port), so a flow costs hash lookups and atomic adds, no
// label strings and no family lock once its series exist.
// Series with context labels are looked up by their label values (strings per flow): the
// price of the labels the operator asked for.
Status registerHubbleMetrics(metrics::Registry& registry, FlowPipeline& pipeline,
                             const MetricsSpec& spec = {});

}  // namespace cilium::hubble
