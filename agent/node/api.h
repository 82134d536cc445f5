// The node manager's REST API: GET /cluster/nodes (api/v1/openapi.yaml), what
// `cilium-dbg node list` prints.
#pragma once

#include <string>

#include "agent/api/router.h"
#include "agent/node/node.h"
#include "api/model/model.h"

namespace cilium::node {

// `nodes` must outlive the router's use of the route; `self` is this node's name.
Status registerRoutes(api::Router& router, const Manager& nodes, std::string self);

api::NodeElement toApi(const Node& n);

}  // namespace cilium::node
