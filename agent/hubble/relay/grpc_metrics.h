// gRPC server metrics under go-grpc-prometheus' names, which Cilium's hubble-relay exports:
//   grpc_server_started_total{grpc_method,grpc_service,grpc_type}
//   grpc_server_handled_total{grpc_code,grpc_method,grpc_service,grpc_type}
//   grpc_server_msg_received_total{grpc_method,grpc_service,grpc_type}
//   grpc_server_msg_sent_total{grpc_method,grpc_service,grpc_type}
// counted by a server interceptor (grpc_type unary|client_stream|server_stream|bidi_stream,
// grpc_code Go's code names: OK, Canceled, InvalidArgument, Unavailable, ...).
#pragma once

#include <memory>

#include "agent/common/error.h"
#include "agent/metrics/registry.h"

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}

namespace cilium::hubble::relay {

class GrpcServerMetrics {
 public:
  // Registers the four families in `registry` (which must outlive the metrics).
  static Result<std::shared_ptr<GrpcServerMetrics>> create(metrics::Registry& registry);
  // An interceptor factory for ServerBuilder::experimental().SetInterceptorCreators; it keeps
  // the metrics alive.
  static std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> interceptor(
      std::shared_ptr<GrpcServerMetrics> metrics);

  metrics::Family<metrics::Counter>* started = nullptr;
  metrics::Family<metrics::Counter>* handled = nullptr;
  metrics::Family<metrics::Counter>* received = nullptr;
  metrics::Family<metrics::Counter>* sent = nullptr;
};

}  // namespace cilium::hubble::relay
