// The Observer service implementation and its gRPC server.
#include "agent/hubble/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <google/protobuf/util/field_mask_util.h>
#include <grpcpp/grpcpp.h>

#include "agent/common/log.h"
#include "agent/hubble/filter.h"
#include "agent/hubble/proto.h"

namespace cilium::hubble {

namespace {

// The port of "host:port" / ":port" ("[v6]:port"); 0 when there is none (or it is 0).
int configuredPort(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return 0;
  int port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return 0;
    port = port * 10 + (c - '0');
  }
  return port <= 65535 ? port : 0;
}

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

// Events a follower takes from the ring at once (and writes with one flush).
constexpr size_t kFollowBatch = 256;

// How long a query waits for the flows of packets that passed before it to reach the ring.
constexpr std::chrono::milliseconds kSyncTimeout{1000};

grpc::Status invalidArgument(std::string msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(msg));
}

// Unknown fields in a request would be dropped by the parser: a newer client asking for more
// than this server knows (a filter, an aggregation) gets a refusal, not a different answer.
grpc::Status checkKnown(const google::protobuf::Message& m, std::string_view what) {
  const auto& unknown = m.GetReflection()->GetUnknownFields(m);
  if (unknown.empty()) return grpc::Status::OK;
  return invalidArgument(fmt::format("{}: field number {} is not known to this server", what,
                                     unknown.field(0).number()));
}

// The events of a ring a request selects (GetAgentEvents, GetDebugEvents, and GetFlows'
// backlog): the last `number` matches, the first `number` with `first`, every one otherwise
// (bounded by since/until through `matches`).
template <class T, class Match>
std::vector<typename Ring<T>::Ptr> backlog(const Ring<T>& ring, uint64_t end, uint64_t number,
                                           bool first, bool follow, bool has_since,
                                           const Match& matches) {
  std::vector<typename Ring<T>::Ptr> out;
  if (!first && number > 0) {
    for (uint64_t seq = end; seq-- > ring.oldest() && out.size() < number;) {
      auto r = ring.read(seq);
      if (r.seq != seq || !r.event) break;  // overwritten meanwhile
      if (matches(*r.event)) out.push_back(r.event);
    }
    std::reverse(out.begin(), out.end());
  } else if (first || has_since || !follow) {
    for (uint64_t seq = ring.oldest(); seq < end; ++seq) {
      if (number > 0 && out.size() >= number) break;
      auto r = ring.read(seq);
      if (!r.event) break;
      seq = r.seq;
      if (matches(*r.event)) out.push_back(r.event);
    }
  }
  return out;
}

// GetAgentEvents / GetDebugEvents: the same selection as GetFlows over an event ring.
template <class T, class Req>
grpc::Status streamEvents(grpc::ServerContext* ctx, const Req& req, const Ring<T>& ring,
                          grpc::ServerWriter<T>* writer, const std::atomic<bool>& stopping) {
  if (auto st = checkKnown(req, "request"); !st.ok()) return st;
  if (req.first() && req.follow()) return invalidArgument("first: cannot be combined with follow");
  const bool has_since = req.has_since(), has_until = req.has_until();
  const int64_t since = has_since ? tsNs(req.since()) : 0;
  const int64_t until = has_until ? tsNs(req.until()) : 0;
  auto matches = [&](const T& ev) {
    int64_t t = tsNs(ev.time());
    return (!has_since || t >= since) && (!has_until || t <= until);
  };
  const uint64_t end = ring.next();
  for (const auto& ev :
       backlog(ring, end, req.number(), req.first(), req.follow(), has_since, matches)) {
    if (ctx->IsCancelled() || !writer->Write(*ev)) return grpc::Status::OK;
  }
  if (!req.follow()) return grpc::Status::OK;
  uint64_t seq = end;
  while (!stopping && !ctx->IsCancelled()) {
    auto r = ring.waitRead(seq, std::chrono::milliseconds(200));
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

Result<std::string> readFile(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) return makeError(ErrorCode::kFailedPrecondition, "{} {}: cannot be read", what, path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty())
    return makeError(ErrorCode::kFailedPrecondition, "{} {}: empty", what, path);
  return ss.str();
}

}  // namespace

Result<std::shared_ptr<grpc::ServerCredentials>> serverTlsCredentials(const TlsOptions& tls,
                                                                      TlsFlagNames names) {
  if (tls.cert_file.empty() || tls.key_file.empty())
    return makeError(ErrorCode::kFailedPrecondition, "TLS needs {} and {}", names.cert, names.key);
  grpc::SslServerCredentialsOptions opts;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  CILIUM_ASSIGN_OR_RETURN(pair.cert_chain, readFile(tls.cert_file, names.cert));
  CILIUM_ASSIGN_OR_RETURN(pair.private_key, readFile(tls.key_file, names.key));
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  for (const auto& ca : tls.client_ca_files) {
    CILIUM_ASSIGN_OR_RETURN(auto pem, readFile(ca, names.client_ca));
    opts.pem_root_certs += pem;
    if (!pem.ends_with('\n')) opts.pem_root_certs += '\n';
  }
  // With client CAs every client must present a certificate they signed (Cilium's mTLS).
  opts.client_certificate_request =
      tls.client_ca_files.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                  : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  return grpc::SslServerCredentials(opts);
}

Status checkFlowsRequest(const observer::GetFlowsRequest& req) {
  auto refuse = [](const grpc::Status& st) {
    return makeError(ErrorCode::kInvalidArgument, "{}", st.error_message());
  };
  // Hubble's observer.proto carries no flow aggregation: field 2 is reserved ("removed") and
  // `experimental` holds only field_mask. A client that sends one anyway is refused, naming
  // aggregation, rather than answered with flows it did not ask for (docs/observability.md).
  auto refuseAggregation = [](const grpc::Status& st) {
    return makeError(ErrorCode::kInvalidArgument,
                     "{} (flow aggregation is not supported: ask without it)", st.error_message());
  };
  if (auto st = checkKnown(req, "request"); !st.ok())
    return req.GetReflection()->GetUnknownFields(req).field(0).number() == 2 ? refuseAggregation(st)
                                                                             : refuse(st);
  if (auto st = checkKnown(req.experimental(), "experimental"); !st.ok())
    return refuseAggregation(st);
  auto filters = FlowFilters::compile(req.whitelist(), req.blacklist());
  if (!filters.ok()) return makeError(ErrorCode::kInvalidArgument, "{}", filters.error().message());
  if (req.first() && req.follow())
    return makeError(ErrorCode::kInvalidArgument, "first: cannot be combined with follow");
  const google::protobuf::FieldMask& mask =
      req.field_mask().paths_size() > 0 ? req.field_mask() : req.experimental().field_mask();
  if (mask.paths_size() > 0 &&
      !google::protobuf::util::FieldMaskUtil::IsValidFieldMask<flow::Flow>(mask)) {
    for (const auto& path : mask.paths())
      if (!google::protobuf::util::FieldMaskUtil::GetFieldDescriptors(flow::Flow::descriptor(),
                                                                      path, nullptr))
        return makeError(ErrorCode::kInvalidArgument, "field_mask: \"{}\" is not a flow field",
                         path);
    return makeError(ErrorCode::kInvalidArgument, "field_mask: not a mask of flow fields");
  }
  return okStatus();
}

class HubbleServer::Service final : public observer::Observer::Service {
 public:
  Service(FlowPipeline& p, const ServerOptions& o) : pipeline_(p), opts_(o) {}

  void shutdown() {
    stopping_ = true;
    pipeline_.ring().wakeAll();
    pipeline_.agentEvents().wakeAll();
    pipeline_.debugEvents().wakeAll();
  }

  grpc::Status GetFlows(grpc::ServerContext* ctx, const observer::GetFlowsRequest* req,
                        grpc::ServerWriter<observer::GetFlowsResponse>* writer) override {
    if (auto st = checkFlowsRequest(*req); !st.ok()) return invalidArgument(st.error().message());
    auto filters = FlowFilters::compile(req->whitelist(), req->blacklist());
    if (!filters.ok()) return invalidArgument(filters.error().message());
    // The top-level field mask, or the experimental one older clients send.
    const google::protobuf::FieldMask& mask =
        req->field_mask().paths_size() > 0 ? req->field_mask() : req->experimental().field_mask();
    const bool masked = mask.paths_size() > 0;
    // Sends an event, trimmed to the mask's fields when it is a flow.
    auto send = [&](const observer::GetFlowsResponse& ev,
                    grpc::WriteOptions wo = grpc::WriteOptions()) {
      if (!masked || !ev.has_flow()) return writer->Write(ev, wo);
      observer::GetFlowsResponse copy = ev;
      google::protobuf::util::FieldMaskUtil::TrimMessage(mask, copy.mutable_flow());
      return writer->Write(copy, wo);
    };
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
      log()->debug("GetFlows: the flow ring was not up to date within {} ms", kSyncTimeout.count());
    auto& ring = pipeline_.ring();
    const uint64_t end = ring.next();
    bool sent = false;
    for (const auto& ev :
         backlog(ring, end, req->number(), req->first(), req->follow(), has_since, matches)) {
      if (ctx->IsCancelled()) return grpc::Status::OK;
      if (!send(*ev)) return grpc::Status::OK;
      sent = true;
    }
    if (!req->follow()) return grpc::Status::OK;
    // The stream's headers go out now: with gRPC 1.51, a first message written with the buffer
    // hint held the headers back, and the batch's flushing write after it did not release them
    // (the client saw nothing until a later batch).
    if (!sent) writer->SendInitialMetadata();

    // Following: the events written since are taken in batches (one ring lock per batch) and
    // written with gRPC's buffer hint but for the last of a batch, so a burst goes out in a few
    // transport writes, not one per flow. Flushing once per batch keeps a quiet stream prompt.
    uint64_t seq = end;
    std::vector<EventPtr> batch;
    std::vector<const observer::GetFlowsResponse*> out;
    batch.reserve(kFollowBatch);
    const auto buffered = grpc::WriteOptions().set_buffer_hint();
    while (!stopping_ && !ctx->IsCancelled()) {
      batch.clear();
      auto r = ring.waitReadMany(seq, std::chrono::milliseconds(200), batch, kFollowBatch);
      seq = r.next;
      bool ended = false;
      out.clear();
      for (const auto& ev : batch) {
        if (has_until && tsNs(ev->time()) > until) {
          ended = true;
          break;
        }
        if (matches(*ev)) out.push_back(ev.get());
      }
      if (r.lost > 0) {
        pipeline_.countReaderLost(r.lost);
        observer::GetFlowsResponse lost;
        lost.set_node_name(pipeline_.nodeName());
        lost.mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
        lost.mutable_lost_events()->set_num_events_lost(r.lost);
        if (!writer->Write(lost, out.empty() ? grpc::WriteOptions() : buffered))
          return grpc::Status::OK;
      }
      // The last event of the batch carries the flush.
      for (size_t i = 0; i < out.size(); ++i)
        if (!send(*out[i], i + 1 == out.size() ? grpc::WriteOptions() : buffered))
          return grpc::Status::OK;
      if (ended) return grpc::Status::OK;
    }
    return grpc::Status::OK;
  }

  grpc::Status GetAgentEvents(
      grpc::ServerContext* ctx, const observer::GetAgentEventsRequest* req,
      grpc::ServerWriter<observer::GetAgentEventsResponse>* writer) override {
    return streamEvents(ctx, *req, pipeline_.agentEvents(), writer, stopping_);
  }

  grpc::Status GetDebugEvents(
      grpc::ServerContext* ctx, const observer::GetDebugEventsRequest* req,
      grpc::ServerWriter<observer::GetDebugEventsResponse>* writer) override {
    (void)pipeline_.sync(kSyncTimeout);
    return streamEvents(ctx, *req, pipeline_.debugEvents(), writer, stopping_);
  }

  // The namespaces of the endpoints in the flows the ring holds, sorted.
  grpc::Status GetNamespaces(grpc::ServerContext*, const observer::GetNamespacesRequest*,
                             observer::GetNamespacesResponse* resp) override {
    (void)pipeline_.sync(kSyncTimeout);
    auto& ring = pipeline_.ring();
    std::set<std::string> names;
    for (uint64_t seq = ring.oldest(), end = ring.next(); seq < end; ++seq) {
      auto r = ring.read(seq);
      if (!r.event) break;
      seq = r.seq;
      if (!r.event->has_flow()) continue;
      const auto& f = r.event->flow();
      if (!f.source().namespace_().empty()) names.insert(f.source().namespace_());
      if (!f.destination().namespace_().empty()) names.insert(f.destination().namespace_());
    }
    for (const auto& n : names) {
      auto* ns = resp->add_namespaces();
      ns->set_cluster(opts_.cluster_name);
      ns->set_namespace_(n);
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
    n->mutable_tls()->set_enabled(opts_.tls.enabled && !opts_.tcp_address.empty());
    if (n->tls().enabled()) n->mutable_tls()->set_server_name(opts_.tls.server_name);
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
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (opts_.tls.enabled) {
      CILIUM_ASSIGN_OR_RETURN(creds, serverTlsCredentials(opts_.tls));
    }
    builder.AddListeningPort(addr, creds, &tcp_port_);
  }
  if (!peer_source_) {
    PeerInfo self;
    self.name = opts_.cluster_name.empty() || opts_.cluster_name == "default"
                    ? pipeline_.nodeName().substr(pipeline_.nodeName().find('/') + 1)
                    : pipeline_.nodeName();
    self.address = !opts_.peer_address.empty()  ? opts_.peer_address
                   : !opts_.tcp_address.empty() ? opts_.tcp_address
                                                : "unix://" + opts_.unix_socket;
    if (opts_.tls.enabled && !opts_.tcp_address.empty())
      self.tls_server_name = opts_.tls.server_name;
    if (opts_.cluster_nodes && !opts_.tcp_address.empty()) {
      std::string node = pipeline_.nodeName().substr(pipeline_.nodeName().find('/') + 1);
      cluster_peers_ = std::make_unique<ClusterPeerSource>(
          opts_.cluster_nodes, std::move(self), node, !opts_.peer_address.empty(),
          configuredPort(opts_.tcp_address), opts_.cluster_name, opts_.tls.enabled);
      peer_source_ = cluster_peers_.get();
    } else {
      local_peers_ = std::make_unique<LocalPeerSource>(std::move(self));
      peer_source_ = local_peers_.get();
    }
  }
  peer_service_ = std::make_unique<PeerService>(*peer_source_);
  builder.RegisterService(service_.get());
  builder.RegisterService(peer_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_)
    return makeError(ErrorCode::kUnavailable, "hubble server: cannot listen on {} {}",
                     opts_.unix_socket, opts_.tcp_address);
  if (!opts_.tcp_address.empty() && tcp_port_ == 0) {
    stop();
    return makeError(ErrorCode::kUnavailable, "hubble server: cannot bind {}", opts_.tcp_address);
  }
  if (cluster_peers_) cluster_peers_->setPort(tcp_port_);
  log()->info("hubble server listening socket={} tcp={} port={} tls={} mtls={}", opts_.unix_socket,
              opts_.tcp_address, tcp_port_, opts_.tls.enabled,
              opts_.tls.enabled && !opts_.tls.client_ca_files.empty());
  return okStatus();
}

void HubbleServer::stop() {
  if (!server_) return;
  service_->shutdown();
  peer_service_->shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  server_.reset();
  if (!opts_.unix_socket.empty()) ::unlink(opts_.unix_socket.c_str());
}

}  // namespace cilium::hubble
