// The service REST API (Cilium's /v1/service paths) over a Manager, and the conversions between
// api::ServiceSpec and LbService. Kept apart from the component so it is tested without a
// kernel.
#pragma once

#include "agent/api/router.h"
#include "agent/service/service.h"
#include "api/model/model.h"

namespace cilium::service {

// The REST view of a frontend (spec and realized status are the same: changes are programmed
// before the call returns).
api::Service toApi(const LbService& svc);
// kInvalidArgument naming the field. `path_id` is the {id} of the request (0 = assign).
Result<LbService> fromApi(const api::ServiceSpec& spec, uint32_t path_id);

// GET /v1/service, GET/PUT/DELETE /v1/service/{id}.
Status registerRoutes(api::Router& router, Manager& mgr);

}  // namespace cilium::service
