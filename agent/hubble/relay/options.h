// hubble-relay's command line, with Cilium's relay flag names and defaults.
#pragma once

#include <string>
#include <vector>

#include "agent/common/error.h"
#include "agent/hubble/relay/pool.h"
#include "agent/hubble/relay/relay.h"

namespace cilium::hubble::relay {

struct Args {
  bool help = false;
  std::string help_text;
  PoolOptions pool;
  RelayOptions relay;
};

// argv without the program name. Errors are kInvalidArgument naming the flag.
Result<Args> parseArgs(const std::vector<std::string>& args);

// "500ms", "5s", "1m", "1h" (Go's duration units, one number and unit).
Result<std::chrono::milliseconds> parseDuration(std::string_view flag, std::string_view v);

}  // namespace cilium::hubble::relay
