// grpc.health.v1.Health for hubble-relay (what its readiness probe asks): one status for the
// relay as a whole ("") and its Observer ("observer.Observer"); other names are NOT_FOUND.
// Check answers the status now; Watch sends it, then every change, until the call ends.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "grpc/health/v1/health.grpc.pb.h"

namespace cilium::hubble::relay {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  void setServing(bool serving);
  // Ends Watch calls (the server is stopping).
  void shutdown();

  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool serving_ = false;
  uint64_t version_ = 0;  // bumped on every change
  bool stopping_ = false;
};

}  // namespace cilium::hubble::relay
