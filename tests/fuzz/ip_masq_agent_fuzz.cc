// Fuzz target: the ip-masq-agent configuration file (a ConfigMap the operator writes).
#include <cstdlib>
#include <string_view>

#include "agent/service/ip_masq_agent.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {

int ipMasqAgent(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = service::parseIpMasqAgentConfig(text);
  if (!cfg.ok()) {
    if (cfg.error().code() != ErrorCode::kInvalidArgument || cfg.error().message().empty())
      std::abort();
    return 0;
  }
  // What is accepted gives IPv4 prefixes only, and never an empty set (defaults or link-local
  // at least, unless every CIDR is IPv6 and link-local is masqueraded).
  for (const auto& p : service::ipMasqAgentNonMasqueradeV4(*cfg))
    if (p.family() != IpFamily::kV4) std::abort();
  return 0;
}

}  // namespace cilium::fuzz

CILIUM_FUZZ_ENTRY(cilium::fuzz::ipMasqAgent)
