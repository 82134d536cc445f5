#include "agent/bpf/test_run.h"

#include <bpf/bpf.h>

namespace cilium::bpf {

Result<TestRunResult> testRun(const bpf_program* prog, std::span<const uint8_t> packet,
                              const TestRunOptions& opts) {
  TestRunResult out;
  // Room for programs that grow the packet (encapsulation, ICMP replies).
  out.packet.resize(packet.size() + 256);
  bpf_test_run_opts o{};
  o.sz = sizeof(o);
  o.data_in = packet.data();
  o.data_size_in = static_cast<__u32>(packet.size());
  o.data_out = out.packet.data();
  o.data_size_out = static_cast<__u32>(out.packet.size());
  o.repeat = opts.repeat;
  __sk_buff ctx_in{};
  __sk_buff ctx_out{};
  if (opts.ctx) {
    ctx_in = *opts.ctx;
    o.ctx_in = &ctx_in;
    o.ctx_size_in = sizeof(ctx_in);
    o.ctx_out = &ctx_out;
    o.ctx_size_out = sizeof(ctx_out);
  }
  if (::bpf_prog_test_run_opts(bpf_program__fd(prog), &o) != 0)
    return errnoError(errno, std::string("test run of ") + bpf_program__name(prog));
  out.retval = static_cast<int32_t>(o.retval);
  out.packet.resize(o.data_size_out);
  out.duration_ns = o.duration;
  if (opts.ctx) out.ctx = ctx_out;
  return out;
}

}  // namespace cilium::bpf
