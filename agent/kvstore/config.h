// The kvstore's configuration keys (kvstore, kvstore-opt, kvstore-lease-ttl,
// identity-gc-interval): declared here, composed by the agent, read by the daemon's kvstore
// components.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "agent/common/error.h"
#include "agent/config/config.h"

namespace cilium::kvstore {

struct Config {
  std::string kvstore;                  // "" (off) | etcd
  std::string kvstore_opt;              // Cilium's map flag: "etcd.config=/path[,k=v...]"
  uint32_t kvstore_lease_ttl = 900;     // seconds (Cilium's 15m)
  uint32_t identity_gc_interval = 900;  // seconds between identity GC passes (0 = off)
};
const config::Registry<Config>& configKeys();

// "etcd.config=/a,k=v" -> {etcd.config: /a, k: v}. kInvalidArgument for anything else than
// comma-separated key=value pairs of the supported options (etcd.config).
Result<std::map<std::string, std::string>> parseKvstoreOpt(std::string_view text);

}  // namespace cilium::kvstore
