// Fuzz target: one Kubernetes object as the informers receive it (JSON), decoded as the kind the
// first byte picks. Beyond "never crash": decoding is deterministic, and CiliumEndpoint and
// CiliumIdentity (which the agent also writes) survive toJson() -> decode unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/k8s/resources.h"

namespace {

using namespace cilium::k8s;

template <typename T>
void check(const nlohmann::json& j) {
  auto a = Resource<T>::decode(j);
  auto b = Resource<T>::decode(j);
  if (a.ok() != b.ok()) std::abort();
  if (a.ok() && !(*a == *b)) std::abort();
  if (!a.ok() && a.error().message().empty()) std::abort();
  if constexpr (std::is_same_v<T, CiliumEndpoint> || std::is_same_v<T, CiliumIdentity>) {
    if (a.ok()) {
      auto back = Resource<T>::decode(toJson(*a));
      if (!back.ok()) std::abort();
      T want = *a;
      // toJson writes the fields the agent owns; the rest of the metadata is the server's.
      want.meta.annotations = back->meta.annotations;
      if (!(*back == want)) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto j =
      nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
                            nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  switch (data[0] % 11) {
    case 0: check<Pod>(j); break;
    case 1: check<Namespace>(j); break;
    case 2: check<Node>(j); break;
    case 3: check<Service>(j); break;
    case 4: check<EndpointSlice>(j); break;
    case 5: check<NetworkPolicy>(j); break;
    case 6: check<CiliumNetworkPolicy>(j); break;
    case 7: check<CiliumClusterwideNetworkPolicy>(j); break;
    case 8: check<CiliumNode>(j); break;
    case 9: check<CiliumEndpoint>(j); break;
    default: check<CiliumIdentity>(j); break;
  }
  return 0;
}
