// Fuzz target: policy text (YAML/JSON, Kubernetes objects, rule arrays) as `cilium-dbg policy
// import`, the manifests directory and the Kubernetes watcher hand it over. Beyond "never crash",
// every decoded rule must survive the trip through its JSON listing unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/policy/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto objects = cilium::policy::decodePolicies(text);
  if (!objects.ok()) return 0;
  for (const auto& o : *objects) {
    auto listed = nlohmann::json::array();
    for (const auto& r : o.rules) listed.push_back(r.toJson());
    auto back = cilium::policy::decodeRules(listed.dump());
    if (!back.ok() || back->size() != o.rules.size()) std::abort();
    for (size_t i = 0; i < o.rules.size(); i++)
      if (!((*back)[i] == o.rules[i])) std::abort();
  }
  return 0;
}
