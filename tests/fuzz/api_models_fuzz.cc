// Fuzz target: every API model decoded from JSON, as the client decodes agent responses.
#include <cstdlib>
#include <string_view>

#include "api/model/model.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {
namespace {

template <typename T>
void roundTrip(std::string_view text) {
  auto r = api::decodeText<T>(text);
  if (!r.ok()) return;
  auto again = api::decode<T>(api::encode(*r));
  if (!again.ok() || !(*again == *r)) std::abort();
}

}  // namespace

int apiModels(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 12) {
    case 0: roundTrip<api::StatusResponse>(text); break;
    case 1: roundTrip<api::DaemonConfiguration>(text); break;
    case 2: roundTrip<api::Endpoint>(text); break;
    case 3: roundTrip<api::IpamResponse>(text); break;
    case 4: roundTrip<api::Identity>(text); break;
    case 5: roundTrip<api::Policy>(text); break;
    case 6: roundTrip<api::SelectorIdentityMapping>(text); break;
    case 7: roundTrip<api::BpfMapList>(text); break;
    case 8: roundTrip<api::DebugInfo>(text); break;
    case 9: roundTrip<api::MonitorEvent>(text); break;
    case 10: roundTrip<api::LabelConfiguration>(text); break;
    case 11: roundTrip<api::EndpointHealth>(text); break;
  }
  return 0;
}

}  // namespace cilium::fuzz

CILIUM_FUZZ_ENTRY(cilium::fuzz::apiModels)
