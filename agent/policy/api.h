// The policy engine's REST API: GET/PUT/DELETE /policy and GET /policy/selectors
// (api/v1/openapi.yaml). Changes go through an ApiTarget, which the control plane implements
// (serialized with every other policy change, durable before the answer, endpoints regenerated).
#pragma once

#include <string_view>

#include "agent/api/router.h"
#include "agent/labels/labels.h"
#include "agent/policy/policy.h"
#include "api/model/model.h"

namespace cilium::policy {

// Where the REST API's changes go: the engine as Owner::kApi.
class ApiTarget {
 public:
  virtual ~ApiTarget() = default;
  // Imports policy text (decode.h) and returns once the affected endpoints enforce it and the
  // rules are persisted.
  virtual Result<ImportResult> importText(std::string_view text) = 0;
  // Deletes the API's rules whose labels contain `labels` (all of them when empty).
  virtual Result<DeleteResult> deleteByLabels(const labels::Labels& labels) = 0;
};

// `engine` and `target` must outlive the router's use of the routes.
Status registerRoutes(api::Router& router, const Engine& engine, ApiTarget& target);

}  // namespace cilium::policy
