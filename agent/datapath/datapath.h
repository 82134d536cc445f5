// The node's datapath: loads the shared eBPF programs once, attaches them to endpoint devices,
// and exposes the maps they share. Pods share programs: attaching an endpoint is a tc attach,
// never a new verifier pass.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/bpf/abi.h"
#include "agent/bpf/attach.h"
#include "agent/bpf/map.h"
#include "agent/common/error.h"
#include "agent/datapath/maps.h"

struct bpf_lxc;

namespace cilium::datapath {

struct Config {
  std::string pin_dir;  // bpffs directory for maps and links; must exist
  uint32_t metrics_map_entries = CILIUM_METRICS_MAP_SIZE;
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

  LxcPrograms programs() const;
  MetricsMap& metrics() { return *metrics_; }
  Result<std::vector<MetricsEntry>> readMetrics() const;

  const Config& config() const { return cfg_; }

 private:
  explicit Datapath(Config cfg);
  std::string linkPin(int ifindex, bpf::TcDirection dir) const;

  Config cfg_;
  struct Programs;
  std::unique_ptr<Programs> progs_;
  std::unique_ptr<MetricsMap> metrics_;
};

}  // namespace cilium::datapath
