// REST handlers of the DNS proxy's cache, as Cilium's: GET/DELETE /v1/fqdn/cache (query
// `matchpattern`, GET also `cidr`), GET /v1/fqdn/cache/{id}, GET /v1/fqdn/names.
#pragma once

#include "agent/api/router.h"
#include "agent/fqdn/name_manager.h"

namespace cilium::fqdn {

// `names` must outlive the router.
Status registerRoutes(api::Router& router, NameManager& names);

}  // namespace cilium::fqdn
