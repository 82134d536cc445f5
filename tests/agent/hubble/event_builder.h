// Builds cilium_event records as bpf_lxc writes them, for the Hubble unit tests.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "agent/bpf/abi.h"

namespace cilium::hubble::testing {

struct EventSpec {
  uint8_t type = EVENT_TRACE;
  uint8_t subtype = TRACE_TO_LXC;
  std::string src = "10.200.0.11";
  std::string dst = "10.200.0.12";
  uint16_t sport = 40000;
  uint16_t dport = 8080;
  uint8_t proto = 6;
  uint8_t tcp_flags = 0x02;  // SYN
  uint8_t dir = METRIC_INGRESS;
  uint8_t ct_state = 0;  // CT_NEW
  uint32_t src_identity = 256;
  uint32_t dst_identity = 257;
  uint16_t source = 2;  // endpoint the program ran for
  uint16_t dst_id = 2;
  int32_t verdict = 0;
  uint8_t match_type = 0;
  uint64_t ktime_ns = 1000;
  uint32_t ifindex = 7;
};

inline cilium_event makeEvent(const EventSpec& s) {
  cilium_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.ktime_ns = s.ktime_ns;
  ev.type = s.type;
  ev.subtype = s.subtype;
  ev.source = s.source;
  ev.ifindex = s.ifindex;
  ev.len_orig = 74;
  ev.src_identity = s.src_identity;
  ev.dst_identity = s.dst_identity;
  ev.dst_id = s.dst_id;
  ev.ct_state = s.ct_state;
  ev.dir = s.dir;
  ev.verdict = s.verdict;
  ev.match_type = s.match_type;
  // IPv6 addresses make an IPv6 tuple, as bpf_lxc reports dual-stack pods' packets.
  const bool v6 = s.src.find(':') != std::string::npos;
  // Both members start at the union's first byte.
  inet_pton(v6 ? AF_INET6 : AF_INET, s.src.c_str(), &ev.tuple.saddr);
  inet_pton(v6 ? AF_INET6 : AF_INET, s.dst.c_str(), &ev.tuple.daddr);
  ev.tuple.sport = htons(s.sport);
  ev.tuple.dport = htons(s.dport);
  ev.tuple.proto = s.proto;
  ev.tuple.family = v6 ? ENDPOINT_KEY_IPV6 : ENDPOINT_KEY_IPV4;
  ev.tuple.tcp_flags = s.tcp_flags;
  return ev;
}

// A policy drop of a SYN from client (256, ep 1) to server (257, ep 2) on the server's ingress.
inline EventSpec policyDrop() {
  EventSpec s;
  s.type = EVENT_DROP;
  s.subtype = DROP_POLICY;
  s.verdict = -DROP_POLICY;
  return s;
}

}  // namespace cilium::hubble::testing
