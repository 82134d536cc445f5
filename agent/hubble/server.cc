// The Observer service implementation and its gRPC server.
#include "agent/hubble/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"
#include "agent/hubble/filter.h"
#include "agent/hubble/proto.h"

namespace cilium::hubble {

namespace {

auto log() {
  static auto l = cilium::logger("hubble");
  return l;
}

// A client may send any Timestamp: beyond what int64 nanoseconds hold (years 1678 to 2262) it
// saturates, which keeps since/until comparisons in order.
int64_t tsNs(const google::protobuf::Timestamp& t) {
  int64_t ns = 0;
  if (__builtin_mul_overflow(t.seconds(), int64_t{1000000000}, &ns) ||
      __builtin_add_overflow(ns, int64_t{t.nanos()}, &ns))
    return t.seconds() < 0 ? INT64_MIN : INT64_MAX;
  return ns;
}

// How long a query waits for the flows of packets that passed before it to reach the ring.
constexpr std::chrono::milliseconds kSyncTimeout{1000};

}  // namespace

class HubbleServer::Service final : public observer::Observer::Service {
 public:
  Service(FlowPipeline& p, const ServerOptions& o) : pipeline_(p), opts_(o) {}

  void shutdown() {
    stopping_ = true;
    pipeline_.ring().wakeAll();
  }

  grpc::Status GetFlows(grpc::ServerContext* ctx, const observer::GetFlowsRequest* req,
                        grpc::ServerWriter<observer::GetFlowsResponse>* writer) override {
    auto filters = FlowFilters::compile(req->whitelist(), req->blacklist());
    if (!filters.ok())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, filters.error().message());
    if (req->first() && req->follow())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "first: cannot be combined with follow");
    const bool has_since = req->has_since(), has_until = req->has_until();
    const int64_t since = has_since ? tsNs(req->since()) : 0;
    const int64_t until = has_until ? tsNs(req->until()) : 0;
    auto inTime = [&](const observer::GetFlowsResponse& ev) {
      int64_t t = tsNs(ev.time());
      return (!has_since || t >= since) && (!has_until || t <= until);
    };
    auto matches = [&](const observer::GetFlowsResponse& ev) {
      if (!inTime(ev)) return false;
      if (ev.has_flow()) return filters->allows(ev.flow());
      return true;  // lost-event notices reach every reader
    };

    // Every packet that passed the datapath before this request is in the answer.
    if (!pipeline_.sync(kSyncTimeout))
      log()->debug("GetFlows: the flow ring was not up to date within {} ms",
                   kSyncTimeout.count());
    auto& ring = pipeline_.ring();
    const uint64_t end = ring.next();
    const uint64_t number = req->number();
    std::vector<EventPtr> backlog;
    if (!req->first() && number > 0) {
      // The last `number` matches: walk back from the newest.
      for (uint64_t seq = end; seq-- > ring.oldest() && backlog.size() < number;) {
        auto r = ring.read(seq);
        if (r.seq != seq || !r.event) break;  // overwritten meanwhile
        if (matches(*r.event)) backlog.push_back(r.event);
      }
      std::reverse(backlog.begin(), backlog.end());
    } else if (req->first() || has_since || !req->follow()) {
      for (uint64_t seq = ring.oldest(); seq < end; ++seq) {
        if (number > 0 && backlog.size() >= number) break;
        auto r = ring.read(seq);
        if (!r.event) break;
        seq = r.seq;
        if (matches(*r.event)) backlog.push_back(r.event);
      }
    }
    for (const auto& ev : backlog) {
      if (ctx->IsCancelled()) return grpc::Status::OK;
      if (!writer->Write(*ev)) return grpc::Status::OK;
    }
    if (!req->follow()) return grpc::Status::OK;

    uint64_t seq = end;
    while (!stopping_ && !ctx->IsCancelled()) {
      auto r = ring.waitRead(seq, std::chrono::milliseconds(200));
      if (r.lost > 0) {
        observer::GetFlowsResponse lost;
        lost.set_node_name(pipeline_.nodeName());
        lost.mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
        lost.mutable_lost_events()->set_num_events_lost(r.lost);
        if (!writer->Write(lost)) return grpc::Status::OK;
      }
      if (!r.event) {
        seq = r.seq;
        continue;
      }
      seq = r.seq + 1;
      if (has_until && tsNs(r.event->time()) > until) return grpc::Status::OK;
      if (matches(*r.event) && !writer->Write(*r.event)) return grpc::Status::OK;
    }
    return grpc::Status::OK;
  }

  grpc::Status ServerStatus(grpc::ServerContext*, const observer::ServerStatusRequest*,
                            observer::ServerStatusResponse* resp) override {
    (void)pipeline_.sync(kSyncTimeout);
    auto st = pipeline_.stats();
    resp->set_num_flows(pipeline_.ring().size());
    resp->set_max_flows(pipeline_.ring().capacity());
    resp->set_seen_flows(st.seen_flows);
    resp->set_uptime_ns(static_cast<uint64_t>(st.uptime.count()));
    resp->mutable_num_connected_nodes()->set_value(1);
    resp->mutable_num_unavailable_nodes()->set_value(0);
    resp->set_version(opts_.version);
    return grpc::Status::OK;
  }

  grpc::Status GetNodes(grpc::ServerContext*, const observer::GetNodesRequest*,
                        observer::GetNodesResponse* resp) override {
    auto st = pipeline_.stats();
    auto* n = resp->add_nodes();
    n->set_name(pipeline_.nodeName());
    n->set_version(opts_.version);
    n->set_address(!opts_.tcp_address.empty() ? opts_.tcp_address : "unix://" + opts_.unix_socket);
    n->set_state(relay::NODE_CONNECTED);
    n->mutable_tls()->set_enabled(false);
    n->set_uptime_ns(static_cast<uint64_t>(st.uptime.count()));
    n->set_num_flows(pipeline_.ring().size());
    n->set_max_flows(pipeline_.ring().capacity());
    n->set_seen_flows(st.seen_flows);
    return grpc::Status::OK;
  }

 private:
  FlowPipeline& pipeline_;
  const ServerOptions& opts_;
  std::atomic<bool> stopping_{false};
};

HubbleServer::HubbleServer(FlowPipeline& pipeline, ServerOptions opts)
    : pipeline_(pipeline), opts_(std::move(opts)) {}

HubbleServer::~HubbleServer() { stop(); }

Status HubbleServer::start() {
  if (opts_.unix_socket.empty() && opts_.tcp_address.empty())
    return makeError(ErrorCode::kInvalidArgument, "hubble server: no socket and no TCP address");
  service_ = std::make_unique<Service>(pipeline_, opts_);
  grpc::ServerBuilder builder;
  if (!opts_.unix_socket.empty()) {
    std::error_code ec;
    auto parent = std::filesystem::path(opts_.unix_socket).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    struct stat st {};
    if (::lstat(opts_.unix_socket.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        return makeError(ErrorCode::kFailedPrecondition,
                         "hubble-socket-path {} exists and is not a socket", opts_.unix_socket);
      ::unlink(opts_.unix_socket.c_str());  // stale: a live server would hold the agent's lock
    }
    builder.AddListeningPort("unix:" + opts_.unix_socket, grpc::InsecureServerCredentials());
  }
  if (!opts_.tcp_address.empty()) {
    std::string addr = opts_.tcp_address;
    if (addr.front() == ':') addr = "0.0.0.0" + addr;
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &tcp_port_);
  }
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_)
    return makeError(ErrorCode::kUnavailable, "hubble server: cannot listen on {} {}",
                     opts_.unix_socket, opts_.tcp_address);
  if (!opts_.tcp_address.empty() && tcp_port_ == 0) {
    stop();
    return makeError(ErrorCode::kUnavailable, "hubble server: cannot bind {}", opts_.tcp_address);
  }
  log()->info("hubble server listening socket={} tcp={} port={}", opts_.unix_socket,
              opts_.tcp_address, tcp_port_);
  return okStatus();
}

void HubbleServer::stop() {
  if (!server_) return;
  service_->shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  server_.reset();
  if (!opts_.unix_socket.empty()) ::unlink(opts_.unix_socket.c_str());
}

}  // namespace cilium::hubble
