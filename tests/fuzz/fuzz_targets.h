// The fuzz targets' entry points, callable from the corpus unit test. Each returns 0 and never
// crashes, whatever the input; an invariant violation aborts (which libFuzzer reports).
// Built as libFuzzer binaries, each file also defines LLVMFuzzerTestOneInput (unless
// CILIUM_FUZZ_NO_ENTRY is defined, as for the corpus test).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cilium::fuzz {

// PUT/PATCH /endpoint/{id} body.
int endpointChangeRequest(const uint8_t* data, size_t size);
// PATCH /config body, decoded and applied to a configuration store.
int daemonConfigurationSpec(const uint8_t* data, size_t size);
// Every API model from JSON (what the client decodes); first byte picks the model.
int apiModels(const uint8_t* data, size_t size);
// A whole request ("METHOD TARGET\nbody") through the router with decoding handlers.
int apiRequest(const uint8_t* data, size_t size);
// A --config-file YAML text.
int configFile(const uint8_t* data, size_t size);

}  // namespace cilium::fuzz

#ifdef CILIUM_FUZZ_NO_ENTRY
#define CILIUM_FUZZ_ENTRY(fn)
#else
#define CILIUM_FUZZ_ENTRY(fn) \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return fn(data, size); }
#endif
