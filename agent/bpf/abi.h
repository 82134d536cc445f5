// The C++ view of bpf/abi/: includes every shared layout and checks its size and offsets, so a
// change on one side without the other fails the build.
#pragma once

#include <cstddef>

extern "C" {
#include "bpf/abi/metrics.h"
}

namespace cilium::bpf {

static_assert(sizeof(metrics_key) == 8);
static_assert(offsetof(metrics_key, reason) == 0);
static_assert(offsetof(metrics_key, dir) == 1);
static_assert(offsetof(metrics_key, line) == 2);
static_assert(offsetof(metrics_key, file) == 4);
static_assert(sizeof(metrics_value) == 16);
static_assert(offsetof(metrics_value, bytes) == 8);

}  // namespace cilium::bpf
