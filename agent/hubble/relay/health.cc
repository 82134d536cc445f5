// HealthService: the relay's serving status over grpc.health.v1.
#include "agent/hubble/relay/health.h"

#include <chrono>

namespace cilium::hubble::relay {

namespace {

using grpc::health::v1::HealthCheckResponse;

bool known(const std::string& service) { return service.empty() || service == "observer.Observer"; }

}  // namespace

void HealthService::setServing(bool serving) {
  {
    std::lock_guard lock(mu_);
    if (serving_ == serving) return;
    serving_ = serving;
    ++version_;
  }
  cv_.notify_all();
}

void HealthService::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

grpc::Status HealthService::Check(grpc::ServerContext*,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  HealthCheckResponse* resp) {
  if (!known(req->service()))
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service " + req->service());
  std::lock_guard lock(mu_);
  resp->set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* ctx,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  HealthCheckResponse resp;
  if (!known(req->service())) {
    // As gRPC's own health service: the status of an unknown service is SERVICE_UNKNOWN.
    resp.set_status(HealthCheckResponse::SERVICE_UNKNOWN);
    writer->Write(resp);
    return grpc::Status::OK;
  }
  uint64_t sent = UINT64_MAX;
  std::unique_lock lock(mu_);
  while (!stopping_ && !ctx->IsCancelled()) {
    if (version_ != sent) {
      sent = version_;
      resp.set_status(serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
      lock.unlock();
      if (!writer->Write(resp)) return grpc::Status::OK;
      lock.lock();
      continue;
    }
    // Cancellation is not signalled on the condition: look again every 200 ms.
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
  return grpc::Status::OK;
}

}  // namespace cilium::hubble::relay
