// The generated Hubble protobuf headers, included the one safe way: bpf/abi/drop.h defines
// DROP_HOST_NOT_READY and DROP_EP_NOT_READY as macros, and flow.proto has enum values with those
// names, so the macros are set aside while the generated code is parsed. Include this instead of
// "flow/flow.pb.h" / "observer/observer*.pb.h" anywhere agent/bpf/abi.h may also be seen.
#pragma once

#pragma push_macro("DROP_HOST_NOT_READY")
#pragma push_macro("DROP_EP_NOT_READY")
#undef DROP_HOST_NOT_READY
#undef DROP_EP_NOT_READY
#include "flow/flow.pb.h"
#include "observer/observer.grpc.pb.h"
#include "observer/observer.pb.h"
#include "peer/peer.grpc.pb.h"
#pragma pop_macro("DROP_EP_NOT_READY")
#pragma pop_macro("DROP_HOST_NOT_READY")
