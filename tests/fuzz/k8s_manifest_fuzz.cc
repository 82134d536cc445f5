// Fuzz target: a manifests-directory file (multi-document YAML) through the same path as
// ManifestSource: yaml::toJson, then validateManifestObject() on every document. Never crashes,
// never hangs; errors always say which document.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/common/yaml.h"
#include "agent/k8s/manifests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto docs = cilium::yaml::toJson(text);
  if (!docs.ok()) {
    if (docs.error().message().rfind("document ", 0) != 0 &&
        docs.error().message().rfind("text ", 0) != 0)
      std::abort();
    return 0;
  }
  for (const auto& d : *docs) (void)cilium::k8s::validateManifestObject(d);
  return 0;
}
