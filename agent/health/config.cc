// The health checker's configuration keys and the duration syntax of health-check-interval.
#include "agent/health/config.h"

#include <cctype>

namespace cilium::health {

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  auto bad = [&] {
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a duration (e.g. 60s, 500ms, 1m30s)",
                     text);
  };
  if (text.empty()) return bad();
  uint64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    uint64_t n = 0;
    size_t digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > 1'000'000'000) return bad();
      n = n * 10 + static_cast<uint64_t>(text[i] - '0');
      i++;
      digits++;
    }
    if (digits == 0) return bad();
    uint64_t unit = 0;
    if (text.substr(i, 2) == "ms") {
      unit = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit = 1000;
      i++;
    } else if (i < text.size() && text[i] == 'm') {
      unit = 60'000;
      i++;
    } else if (i < text.size() && text[i] == 'h') {
      unit = 3'600'000;
      i++;
    } else {
      return bad();
    }
    total += n * unit;
    if (total > 1'000'000'000'000ULL) return bad();
  }
  return std::chrono::milliseconds(total);
}

std::string durationText(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms >= 3'600'000) out += std::to_string(ms / 3'600'000) + "h", ms %= 3'600'000;
  if (ms >= 60'000) out += std::to_string(ms / 60'000) + "m", ms %= 60'000;
  if (ms >= 1000) out += std::to_string(ms / 1000) + "s", ms %= 1000;
  if (ms > 0) out += std::to_string(ms) + "ms";
  return out;
}

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->boolean("enable-health-checking",
               "Probe every node and its health endpoint (ICMP and HTTP on cluster-health-port) "
               "and serve the health port on this node",
               &Config::enable_health_checking);
    r->boolean("enable-endpoint-health-checking",
               "Run this node's health endpoint (a network namespace with the reserved health "
               "address, identity health) and probe the other nodes' health endpoints",
               &Config::enable_endpoint_health_checking);
    config::Key<Config> k;
    k.name = "health-check-interval";
    k.type = "duration";
    k.description = "Time between two rounds of connectivity probes (e.g. 60s, 1s, 500ms)";
    k.set = [](Config& c, std::string_view v) -> Status {
      CILIUM_ASSIGN_OR_RETURN(auto d, parseDuration(v));
      if (d < std::chrono::milliseconds(100))
        return config::invalidValue(fmt::format("'{}' is shorter than 100ms", v));
      c.health_check_interval = d;
      return okStatus();
    };
    k.get = [](const Config& c) { return nlohmann::json(durationText(c.health_check_interval)); };
    r->add(std::move(k));
    r->uint("cluster-health-port",
            "TCP port of the health endpoint and of the node's health server",
            &Config::cluster_health_port, 1, 65535);
    return r;
  }();
  return *r;
}

}  // namespace cilium::health
