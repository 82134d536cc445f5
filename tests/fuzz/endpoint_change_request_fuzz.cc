// Fuzz target: the EndpointChangeRequest body of PUT /endpoint/{id}.
#include <cstdlib>
#include <string_view>

#include "api/model/model.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cilium::fuzz {

int endpointChangeRequest(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = api::decodeText<api::EndpointChangeRequest>(text);
  if (!r.ok()) {
    // Rejections are always "bad input", never something else.
    if (r.error().code() != ErrorCode::kInvalidArgument || r.error().message().empty())
      std::abort();
    return 0;
  }
  // What was accepted encodes and decodes back to the same request.
  auto again = api::decode<api::EndpointChangeRequest>(api::encode(*r));
  if (!again.ok() || !(*again == *r)) std::abort();
  return 0;
}

}  // namespace cilium::fuzz

CILIUM_FUZZ_ENTRY(cilium::fuzz::endpointChangeRequest)
