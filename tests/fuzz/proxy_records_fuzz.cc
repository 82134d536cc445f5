// Fuzz target: what the agent reads from cilium-proxy's socket (agent/proxy/wire.h): bytes cut
// into frames, records frames decoded, the rest parsed as JSON. Beyond "never crash": a records
// frame that decodes re-encodes to the same bytes (no field is lost or invented).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/proxy/wire.h"

using namespace cilium::proxy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FrameReader reader;
  reader.feed(reinterpret_cast<const char*>(data), size);
  for (;;) {
    auto body = reader.nextBody();
    if (!body.ok() || !body->has_value()) break;
    const std::string& b = **body;
    if (b.empty() || b[0] != kRecordsTag) continue;
    auto records = decodeRecords(b);
    if (!records.ok()) continue;
    std::string again = encodeRecordsFrame(*records).substr(4);
    // Header counts above 0xffff are cut on encode; decode never yields them.
    if (again != b) std::abort();
  }
  return 0;
}
