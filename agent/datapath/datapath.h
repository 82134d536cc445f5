// The node's datapath: loads the shared eBPF programs once, attaches them to endpoint devices,
// and exposes the maps they share. Pods share programs: attaching an endpoint is a tc attach,
// never a new verifier pass.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/bpf/attach.h"
#include "agent/bpf/map.h"
#include "agent/common/error.h"
#include "agent/datapath/events.h"
#include "agent/datapath/maps.h"

struct bpf_lxc;

namespace cilium::datapath {

// How many trace events the datapath emits (abi/events.h MONITOR_AGGREGATION_*).
enum class MonitorAggregation : uint8_t {
  kNone = MONITOR_AGGREGATION_NONE,      // every packet at every observation point
  kMedium = MONITOR_AGGREGATION_MEDIUM,  // new connections, new TCP flags, once per interval
};

struct CtTimeouts {  // seconds
  uint32_t tcp_syn = CT_TIMEOUT_TCP_SYN;
  uint32_t tcp_established = CT_TIMEOUT_TCP_ESTABLISHED;
  uint32_t tcp_close = CT_TIMEOUT_TCP_CLOSE;
  uint32_t non_tcp = CT_TIMEOUT_NONTCP;
};

// Everything fixed at load time. Map sizes of pinned maps that differ from the pinned ones
// replace those maps (their contents are lost; the agent rewrites them).
struct Config {
  std::string pin_dir;           // bpffs directory for maps and links; must exist
  std::string procfs = "/proc";  // the host's procfs, where per-device sysctls are written
  uint32_t metrics_map_entries = CILIUM_METRICS_MAP_SIZE;
  uint32_t lxc_map_entries = CILIUM_LXC_MAP_SIZE;  // cilium_lxc and cilium_lxc_if
  uint32_t ipcache_map_entries = CILIUM_IPCACHE_MAP_SIZE;
  uint32_t policy_map_entries = CILIUM_POLICY_MAP_SIZE;  // per endpoint (inner maps)
  uint32_t policy_endpoints = CILIUM_POLICY_OUTER_SIZE;  // outer map
  uint32_t ct_tcp_map_entries = CILIUM_CT_TCP_MAP_SIZE;
  uint32_t ct_any_map_entries = CILIUM_CT_ANY_MAP_SIZE;
  uint32_t events_ring_bytes = CILIUM_EVENTS_RING_SIZE;  // a power of two, >= page size
  uint32_t events_rate = 0;                              // events per second per CPU; 0 = unlimited
  uint32_t events_burst = 0;  // bucket depth; 0 = one second's worth of events_rate
  // Readers are woken when this many bytes of events are waiting; fewer wait for the reader's
  // next timed poll (EventReader::poll). 0 = min(64 KiB, a quarter of the ring).
  uint32_t events_wakeup_bytes = 0;
  MonitorAggregation monitor_aggregation = MonitorAggregation::kMedium;
  uint32_t ct_report_interval = CT_REPORT_INTERVAL;  // seconds between traces of a connection
  CtTimeouts ct_timeouts;
  // Source address of a pod's packets to itself through a service (hairpin), network byte
  // order: 169.254.42.1 (ipv4-service-loopback-address).
  uint32_t lb_loopback_ipv4 = htonl(0xa9fe2a01);
  // Its IPv6 twin (fe80::1, ipv6-service-loopback-address), 16 bytes in network order.
  std::array<uint8_t, 16> lb_loopback_ipv6 = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

  // kInvalidArgument naming the bad field.
  Status validate() const;
};

// One (reason, direction) counter summed over CPUs.
struct MetricsEntry {
  uint8_t reason = 0;
  uint8_t dir = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

// The loaded entry programs, for attachment and for BPF_PROG_TEST_RUN (tests, benchmarks).
struct LxcPrograms {
  const bpf_program* from_container = nullptr;  // tc ingress of the host-side veth
  const bpf_program* to_container = nullptr;    // tc egress of the host-side veth
  const bpf_program* to_proxy = nullptr;        // tc ingress of lo (L7 proxy hairpin)
  const bpf_program* from_overlay = nullptr;    // tc ingress of cilium_vxlan (bpf_overlay)
};

class Datapath {
 public:
  // Loads the programs, creating or reusing the pinned maps under cfg.pin_dir.
  static Result<std::unique_ptr<Datapath>> load(const Config& cfg);
  ~Datapath();

  // Attaches bpf_lxc to the host side of an endpoint's veth (in the calling thread's network
  // namespace) and pins both links under <pin_dir>/links/, so the attachment outlives the agent.
  // Attaching an already attached device replaces the programs atomically.
  Status attachEndpoint(int ifindex);
  // Removes both attachments and their pins. A device that no longer exists is not an error.
  Status detachEndpoint(int ifindex);

  // Transparent redirection to the L7 proxies (bpf/abi/proxy.h), in the calling thread's network
  // namespace: attaches cil_to_proxy to lo's tcx ingress (pinned as links/proxy_lo_ingress),
  // installs the fwmark rule and the local route of PROXY_ROUTE_TABLE (for IPv6 too when lo has
  // IPv6), and lets lo take local sources (accept_local), which the hairpin of packets from the
  // node itself needs.
  // Idempotent; what it installs outlives the agent.
  Status enableProxyRedirect();

  // Tunnel mode: attaches bpf_overlay to the ingress of `ifindex` (cilium_vxlan, a collect_md
  // VXLAN device, in the calling thread's namespace), pins the link under <pin_dir>/links/, then
  // tells bpf_lxc to encapsulate towards the ipcache's tunnel endpoints through that device
  // (RUNTIME_TUNNEL_IFINDEX). Re-attaching swaps the program atomically.
  Status attachOverlay(int ifindex);
  // Native routing: stops encapsulating (pods' packets to other nodes go to the stack), then
  // removes the overlay attachment. Nothing attached is fine.
  Status detachOverlay();
  // Tunnel mode: attaches bpf_overlay's cil_from_host to the tcx egress of `ifindex` (cilium_host),
  // which encapsulates the node's own packets to other nodes' pods; pinned under <pin_dir>/links/.
  // An attachment to another (older) cilium_host goes.
  Status attachHostEgress(int ifindex);
  // Removes every host egress attachment but the one of `keep_ifindex` (0: all of them).
  Status detachHostEgress(int keep_ifindex = 0);

  LxcPrograms programs() const;
  // Every map, backed by the kernel; valid as long as this Datapath.
  Maps maps();
  MetricsMap& metrics() { return *metrics_; }
  Result<std::vector<MetricsEntry>> readMetrics() const;
  // A reader of the event ring; the callback runs on the thread that polls.
  Result<std::unique_ptr<EventReader>> openEventReader(EventReader::Callback cb) const;
  Result<EventCounters> eventCounters() const;

  const Config& config() const { return cfg_; }

 private:
  explicit Datapath(Config cfg);
  std::string linkPin(int ifindex, bpf::TcDirection dir) const;
  std::string overlayPin(int ifindex) const;
  std::string hostEgressPin(int ifindex) const;

  Config cfg_;
  struct State;
  std::unique_ptr<State> s_;
  std::unique_ptr<MetricsMap> metrics_;
};

}  // namespace cilium::datapath
