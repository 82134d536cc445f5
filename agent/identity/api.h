// The identity allocator's REST API: GET /identity (label filter), GET /identity/{id} (a number
// or a reserved identity's name) (api/v1/openapi.yaml).
#pragma once

#include "agent/api/router.h"
#include "agent/identity/allocator.h"
#include "api/model/model.h"

namespace cilium::identity {

// `ids` must outlive the router's use of the routes.
Status registerRoutes(api::Router& router, const Allocator& ids);

api::Identity toApi(const Identity& id);

}  // namespace cilium::identity
