// Human-readable names of datapath codes (drop reasons, observation points, conntrack states)
// and a one-line rendering of an event, for the metrics exporter, the CLI and test messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/bpf/abi.h"

namespace cilium::datapath {

// Cilium's text for a drop reason ("Policy denied", "Policy denied by denylist", "Invalid source
// ip", ...), so metrics labels and CLI output read as Cilium's do; the number for unknown codes.
std::string dropReasonName(uint8_t reason);
// "to-endpoint", "from-endpoint", "to-stack", ... (Cilium monitor's names).
std::string_view tracePointName(uint8_t point);
std::string_view ctStatusName(uint8_t status);
std::string_view eventTypeName(uint8_t type);
std::string_view policyMatchName(uint8_t match_type);

// "drop (Policy denied) 10.0.0.1:40000 -> 10.0.0.2:80 tcp [SYN] identity 256 -> 257 ep 12 egress".
std::string formatEvent(const cilium_event& ev);

}  // namespace cilium::datapath
