// GET /v1/monitor: datapath events as NDJSON (api::MonitorEvent), served from an EventHub
// subscription per client, with the type and endpoint filters of `cilium-dbg monitor`.
#pragma once

#include "agent/api/router.h"
#include "agent/monitor/event_hub.h"
#include "api/model/model.h"

namespace cilium::monitor {

// The API form of a datapath record. `boot_offset_ns` turns the record's bpf_ktime_get_ns()
// into wall-clock time (realtime - monotonic at agent start).
api::MonitorEvent toApiEvent(const cilium_event& ev, int64_t boot_offset_ns);

// Per-client queue size; when a slow client falls behind, events are dropped and reported as a
// "lost" event with their count.
inline constexpr size_t kClientQueue = 8192;

// `hub` must outlive the router's use of the route.
Status registerRoutes(api::Router& router, EventHub& hub);

}  // namespace cilium::monitor
