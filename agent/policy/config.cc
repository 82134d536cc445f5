// The policy engine's configuration key.
#include "agent/policy/config.h"

namespace cilium::policy {

const config::Registry<EnforcementConfig>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<EnforcementConfig>;
    r->choice("enable-policy", "Policy enforcement mode", &EnforcementConfig::enable_policy,
              {"default", "always", "never"});
    return r;
  }();
  return *r;
}

}  // namespace cilium::policy
