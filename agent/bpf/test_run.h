// BPF_PROG_TEST_RUN: runs a loaded program on a packet in the kernel without any device. Used by
// the bpf test tier and the datapath benchmarks.
#pragma once

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "agent/common/error.h"

namespace cilium::bpf {

struct TestRunResult {
  int32_t retval = 0;            // the program's return value (TC_ACT_*, XDP_*)
  std::vector<uint8_t> packet;   // the packet as the program left it
  uint32_t duration_ns = 0;      // mean time per run
  std::optional<__sk_buff> ctx;  // the skb context after the run (tc programs)
};

struct TestRunOptions {
  uint32_t repeat = 1;
  std::optional<__sk_buff>
      ctx;  // tc: mark, ifindex, ingress_ifindex, cb[] as the program sees them
};

Result<TestRunResult> testRun(const bpf_program* prog, std::span<const uint8_t> packet,
                              const TestRunOptions& opts = {});

}  // namespace cilium::bpf
