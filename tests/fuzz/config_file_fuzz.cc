// Fuzz target: the YAML text of --config-file.
#include <cstdlib>
#include <string_view>

#include "agent/daemon/config.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {

int configFile(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = daemon::configFromYaml(text, "fuzz.yaml");
  if (!cfg.ok()) {
    if (cfg.error().code() != ErrorCode::kInvalidArgument) std::abort();
    return 0;
  }
  // Every accepted value renders and parses back to itself.
  for (const auto& key : daemon::configKeys()) {
    daemon::Config copy = *cfg;
    if (!key.set(copy, daemon::configValueText(key, *cfg)).ok()) std::abort();
    if (key.get(copy) != key.get(*cfg)) std::abort();
  }
  return 0;
}

}  // namespace cilium::fuzz

CILIUM_FUZZ_ENTRY(cilium::fuzz::configFile)
