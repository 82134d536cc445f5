// Fuzz target: kubeconfig text (cilium-agent --k8s-kubeconfig-path, cilium-operator) through
// parseKubeconfig. Relative file references resolve against a directory that does not exist,
// so only inline data is read. Beyond "never crash": bad input is kInvalidArgument (or
// kUnimplemented for auth methods we do not support) with a message, and an accepted config has
// an http(s) server and a certificate/key pair that goes together.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/k8s/client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = cilium::k8s::parseKubeconfig(text, "/nonexistent/cilium-fuzz");
  if (!cfg.ok()) {
    auto code = cfg.error().code();
    if ((code != cilium::ErrorCode::kInvalidArgument &&
         code != cilium::ErrorCode::kUnimplemented) ||
        cfg.error().message().empty())
      std::abort();
    return 0;
  }
  if (cfg->server.rfind("https://", 0) != 0 && cfg->server.rfind("http://", 0) != 0) std::abort();
  if (cfg->client_cert_pem.empty() != cfg->client_key_pem.empty()) std::abort();
  if (cfg->namespace_name.empty()) std::abort();
  return 0;
}
