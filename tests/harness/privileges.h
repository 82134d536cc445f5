// What the privileged test tiers need from the machine, checked once per test binary.
#pragma once

#include <string>

namespace cilium::testing {

// Empty when the process is root and bpf() works (bpffs is mounted if it was not);
// otherwise the reason the privileged tiers cannot run.
std::string privilegedUnavailableReason();

}  // namespace cilium::testing
