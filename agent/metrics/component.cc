// Starts and stops a /metrics endpoint with the agent.
#include "agent/metrics/component.h"

namespace cilium::metrics {

Status MetricsComponent::start(component::Host& host) {
  const std::string addr = address_(host);
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
