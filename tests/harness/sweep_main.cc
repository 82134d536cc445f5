// cilium-test-sweep: removes every test namespace, pin dir, cgroup and scratch dir. CTest runs it
// after the privileged tiers (fixture cilium_sweep), so a killed test leaves nothing behind.
#include <cstdio>
#include <cstring>

#include "tests/harness/netns.h"

int main(int argc, char** argv) {
  bool all = argc > 1 && std::strcmp(argv[1], "--all") == 0;
  if (auto s = cilium::testing::sweepStale(all); !s.ok()) {
    std::fprintf(stderr, "sweep: %s\n", s.error().toString().c_str());
    return 1;
  }
  return 0;
}
