// Routes libbpf's messages (verifier logs included) into the "libbpf" spdlog logger.
#pragma once

namespace cilium::bpf {

// Idempotent; call once early in main(). Warnings stay warnings; libbpf's info and debug output
// (which includes verifier logs on failure) go to debug and trace.
void routeLibbpfLogs();

}  // namespace cilium::bpf
