// cilium-health: the cluster connectivity health of the agent this host runs, from its REST API
// (GET /v1/health/status, PUT /v1/health/status/probe on the agent's Unix socket).
//   cilium-health status [--probe] [--verbose] [-o json] [-H socket]
//   cilium-health ping
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace cilium::health::cli {

// Exit status: 0 success, 1 the agent did not answer (or answered an error), 2 usage error.
// `getenv` reads CILIUM_SOCK (the default for -H).
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const std::function<const char*(const char*)>& getenv);

}  // namespace cilium::health::cli
