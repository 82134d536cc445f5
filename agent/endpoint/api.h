// The endpoint manager's REST API: GET /endpoint, PUT/GET/PATCH/DELETE /endpoint/{id},
// GET /endpoint/{id}/labels, GET /endpoint/{id}/healthz (api/v1/openapi.yaml).
#pragma once

#include "agent/api/router.h"
#include "agent/endpoint/manager.h"
#include "api/model/model.h"

namespace cilium::endpoint {

// `manager` must outlive the router's use of the routes.
Status registerRoutes(api::Router& router, Manager& manager);

// The API's view of an endpoint.
api::Endpoint toApi(const Endpoint& ep);
// A PUT body as a spec (`path_ref` is the {id} of the path). kInvalidArgument naming the field.
Result<Spec> specFromRequest(const api::EndpointChangeRequest& req,
                             const api::EndpointRef& path_ref);
Ref refFromApi(const api::EndpointRef& ref);

}  // namespace cilium::endpoint
