// Fuzz target: a cilium_events ring-buffer record as the monitor path reads it: decodeEvent,
// the REST form of GET /v1/monitor (monitor::toApiEvent, encoded as the NDJSON line a client
// decodes) and the one-line text of cilium-dbg and test messages (datapath::formatEvent).
// Records come from programs we build, but a newer or older datapath, a bug or a corrupted ring
// must not take the agent down. Beyond "never crash": the API event reads back unchanged.
#include <cstdint>
#include <cstdlib>

#include "agent/datapath/events.h"
#include "agent/datapath/monitor.h"
#include "agent/monitor/api.h"
#include "api/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ev = cilium::datapath::decodeEvent({data, size});
  if (!ev.ok()) {
    if (ev.error().code() != cilium::ErrorCode::kInvalidArgument) std::abort();
    return 0;
  }
  (void)cilium::datapath::formatEvent(*ev);
  // realtime - monotonic as on a machine booted a while ago (2026).
  constexpr int64_t kBootOffsetNs = 1'767'225'600'000'000'000;
  auto api_event = cilium::monitor::toApiEvent(*ev, kBootOffsetNs);
  auto line = cilium::api::encode(api_event).dump();
  auto back = cilium::api::decodeText<cilium::api::MonitorEvent>(line);
  if (!back.ok() || !(*back == api_event)) std::abort();
  return 0;
}
