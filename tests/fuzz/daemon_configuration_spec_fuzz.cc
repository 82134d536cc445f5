// Fuzz target: the DaemonConfigurationSpec body of PATCH /config, applied to a store.
#include <cstdlib>
#include <string_view>

#include "agent/daemon/config.h"
#include "api/model/model.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {

int daemonConfigurationSpec(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = api::decodeText<api::DaemonConfigurationSpec>(text);
  if (!spec.ok()) return 0;
  daemon::Config initial;
  initial.node_name = "fuzz";
  initial.bpf_pin_dir = "/sys/fs/bpf/cilium";
  daemon::ConfigStore store(initial);
  auto before = store.immutableOptions();
  std::map<std::string, std::string> changes = spec->options;
  if (!spec->policy_enforcement.empty()) changes["enable-policy"] = spec->policy_enforcement;
  auto st = store.apply(changes);
  if (!st.ok() && st.error().code() != ErrorCode::kInvalidArgument) std::abort();
  // Whatever was sent, immutable options never change at run time.
  if (store.immutableOptions() != before) std::abort();
  return 0;
}

}  // namespace cilium::fuzz

CILIUM_FUZZ_ENTRY(cilium::fuzz::daemonConfigurationSpec)
