// Starts and stops the agent's /metrics endpoint with the daemon.
#include "agent/metrics/component.h"

namespace cilium::metrics {

Status MetricsComponent::start(daemon::Daemon& daemon) {
  auto cfg = daemon.config().snapshot();
  const std::string& addr = cfg.*key_;
  if (addr.empty()) return okStatus();
  server_ = std::make_unique<MetricsServer>(registry_, addr);
  auto st = server_->start();
  if (!st.ok()) {
    server_.reset();
    return st.error().withContext(name_);
  }
  return okStatus();
}

void MetricsComponent::stop() { server_.reset(); }

}  // namespace cilium::metrics
