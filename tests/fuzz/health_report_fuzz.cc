// Fuzz target: the agent's GET /v1/health/status answer as cilium-health and cilium-dbg status
// read it (health::reportFromJson). Beyond "never crash": bad input is kInvalidArgument with a
// message, and an accepted report survives its own round trip (toJson, then read again) and
// formats without surprises.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/health/prober.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  auto r = cilium::health::reportFromJson(j);
  if (!r.ok()) {
    if (r.error().code() != cilium::ErrorCode::kInvalidArgument || r.error().message().empty())
      std::abort();
    return 0;
  }
  auto again = cilium::health::reportFromJson(cilium::health::toJson(*r));
  if (!again.ok() || !(*again == *r)) std::abort();
  (void)cilium::health::summaryText(*r);
  (void)cilium::health::formatStatus(*r, true);
  (void)cilium::health::formatStatus(*r, false);
  return 0;
}
