// cilium-health: see agent/health/cli/cli.h.
#include <cstdlib>
#include <iostream>

#include "agent/health/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return cilium::health::cli::run(args, std::cout, std::cerr,
                                  [](const char* name) { return std::getenv(name); });
}
