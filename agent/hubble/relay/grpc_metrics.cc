// GrpcServerMetrics: a server interceptor counting calls, messages and status codes.
#include "agent/hubble/relay/grpc_metrics.h"

#include <iterator>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

namespace cilium::hubble::relay {

namespace {

using grpc::experimental::InterceptionHookPoints;

const char* codeName(grpc::StatusCode c) {
  static const char* kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  auto i = static_cast<size_t>(c);
  return i < std::size(kNames) ? kNames[i] : "Unknown";
}

const char* typeName(grpc::experimental::ServerRpcInfo::Type t) {
  using T = grpc::experimental::ServerRpcInfo::Type;
  switch (t) {
    case T::UNARY: return "unary";
    case T::CLIENT_STREAMING: return "client_stream";
    case T::SERVER_STREAMING: return "server_stream";
    case T::BIDI_STREAMING: return "bidi_stream";
  }
  return "unary";
}

class Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(grpc::experimental::ServerRpcInfo* info, GrpcServerMetrics& m) : m_(m) {
    // "/observer.Observer/GetFlows"
    std::string_view full = info->method() ? info->method() : "";
    if (full.starts_with('/')) full.remove_prefix(1);
    auto slash = full.rfind('/');
    service_ = std::string(full.substr(0, slash == std::string_view::npos ? 0 : slash));
    method_ = std::string(slash == std::string_view::npos ? full : full.substr(slash + 1));
    type_ = typeName(info->type());
    sent_.emplace(m_.sent->with({method_, service_, type_}));
    received_.emplace(m_.received->with({method_, service_, type_}));
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* b) override {
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA))
      m_.started->with({method_, service_, type_}).inc();
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) received_->inc();
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) sent_->inc();
    if (b->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS))
      m_.handled->with({codeName(b->GetSendStatus().error_code()), method_, service_, type_}).inc();
    b->Proceed();
  }

 private:
  GrpcServerMetrics& m_;
  std::string service_, method_;
  const char* type_;
  std::optional<metrics::Counter> sent_, received_;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(std::shared_ptr<GrpcServerMetrics> m) : m_(std::move(m)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Interceptor(info, *m_);
  }

 private:
  std::shared_ptr<GrpcServerMetrics> m_;
};

}  // namespace

Result<std::shared_ptr<GrpcServerMetrics>> GrpcServerMetrics::create(metrics::Registry& r) {
  auto m = std::make_shared<GrpcServerMetrics>();
  const std::vector<std::string> labels = {"grpc_method", "grpc_service", "grpc_type"};
  CILIUM_ASSIGN_OR_RETURN(m->started,
                          r.counter("grpc_server_started_total",
                                    "Total number of RPCs started on the server.", labels));
  CILIUM_ASSIGN_OR_RETURN(
      m->handled,
      r.counter("grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                {"grpc_code", "grpc_method", "grpc_service", "grpc_type"}));
  CILIUM_ASSIGN_OR_RETURN(
      m->received,
      r.counter("grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.", labels));
  CILIUM_ASSIGN_OR_RETURN(
      m->sent, r.counter("grpc_server_msg_sent_total",
                         "Total number of gRPC stream messages sent by the server.", labels));
  return m;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::interceptor(std::shared_ptr<GrpcServerMetrics> metrics) {
  return std::make_unique<Factory>(std::move(metrics));
}

}  // namespace cilium::hubble::relay
