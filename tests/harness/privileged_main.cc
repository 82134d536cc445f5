// main() of the bpf, netns and e2e tiers: skips (exit 77) when the machine cannot run them,
// unless CILIUM_TEST_REQUIRE_PRIVILEGED=1 (set by CI) turns that into a failure. Before the
// tests run it removes what killed earlier test processes left behind.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "agent/bpf/libbpf_log.h"
#include "agent/common/log.h"
#include "tests/harness/netns.h"
#include "tests/harness/privileges.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::string reason = cilium::testing::privilegedUnavailableReason();
  if (!reason.empty()) {
    const char* require = std::getenv("CILIUM_TEST_REQUIRE_PRIVILEGED");
    if (require != nullptr && std::string(require) == "1") {
      std::fprintf(stderr, "FAILED: privileged tests required but cannot run: %s\n",
                   reason.c_str());
      return 1;
    }
    std::fprintf(stderr, "SKIPPED: privileged tests need root and bpf(): %s\n", reason.c_str());
    return 77;
  }
  cilium::setLogLevel(std::getenv("CILIUM_TEST_LOG") ? std::getenv("CILIUM_TEST_LOG") : "warn");
  cilium::bpf::routeLibbpfLogs();
  if (auto s = cilium::testing::sweepStale(false); !s.ok())
    std::fprintf(stderr, "warning: sweeping stale test state: %s\n", s.error().toString().c_str());
  return RUN_ALL_TESTS();
}
