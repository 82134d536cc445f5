// The datapath's REST API: GET /map (the pinned maps) and GET /map/{name} with the entries of the
// maps it can list (api/v1/openapi.yaml).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/api/router.h"
#include "agent/datapath/maps.h"
#include "api/model/model.h"

namespace cilium::datapath {

// Lists one map's entries where the map's owner renders them better than its raw layout (the
// ipcache's entries with their sources and tunnel endpoints).
using MapLister = std::function<Result<std::vector<api::BpfMapEntry>>()>;

// `maps` must stay valid while the routes are used. cilium_lxc, cilium_lxc_if, cilium_policy_v2
// and the four conntrack maps (IPv4 and IPv6; "TCP OUT [fd00::1]:40000 -> [fd00::2]:80") are
// listed from `maps`; the maps in `listers` by their lister.
Status registerMapRoutes(api::Router& router, Maps maps, std::string pin_dir,
                         std::map<std::string, MapLister> listers);

}  // namespace cilium::datapath
