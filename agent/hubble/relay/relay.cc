// RelayServer: fan-out of Observer calls to the nodes and the merge of their answers.
#include "agent/hubble/relay/relay.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/server_interceptor.h>

#include "agent/common/log.h"
#include "agent/hubble/relay/grpc_metrics.h"
#include "agent/hubble/relay/health.h"
#include "agent/hubble/relay/merge.h"
#include "agent/hubble/server.h"

namespace cilium::hubble::relay {

namespace {

auto log() {
  static auto l = cilium::logger("hubble-relay");
  return l;
}

// How often a following GetFlows looks for cancelled clients and nodes to add.
constexpr std::chrono::milliseconds kPollInterval{200};
// Events the merge hands over at once (and written with one flush).
constexpr size_t kWriteBatch = 256;
// How long a following GetFlows waits before it asks a node whose stream failed again.
constexpr std::chrono::milliseconds kRejoinHoldOff{1000};

observer::GetFlowsResponse nodeStatus(::relay::NodeState state, std::vector<std::string> names,
                                      std::string message) {
  observer::GetFlowsResponse r;
  auto* ns = r.mutable_node_status();
  ns->set_state_change(state);
  for (auto& n : names) ns->add_node_names(std::move(n));
  ns->set_message(std::move(message));
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ns_now = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  r.mutable_time()->set_seconds(ns_now / 1000000000);
  r.mutable_time()->set_nanos(static_cast<int32_t>(ns_now % 1000000000));
  return r;
}

// Runs `call(node)` for every node at once; results in the nodes' order.
template <class R>
std::vector<R> fanOut(const std::vector<NodeConn>& nodes,
                      const std::function<R(const NodeConn&)>& call) {
  std::vector<R> out(nodes.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nodes.size(); ++i)
    threads.emplace_back([&, i] { out[i] = call(nodes[i]); });
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace

class RelayServer::Service final : public observer::Observer::Service {
 public:
  Service(PeerPool& pool, const RelayOptions& opts) : pool_(pool), opts_(opts) {}

  void shutdown() { stopping_ = true; }

  grpc::Status GetFlows(grpc::ServerContext* ctx, const observer::GetFlowsRequest* req,
                        grpc::ServerWriter<observer::GetFlowsResponse>* writer) override {
    if (auto st = checkFlowsRequest(*req); !st.ok())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, st.error().message());
    FlowMerger merger({opts_.sort_buffer_len, opts_.sort_buffer_drain_timeout, req->follow()});
    Streams streams(merger);

    auto nodes = pool_.nodes();
    std::vector<std::string> unavailable;
    for (const auto& n : nodes) {
      if (n.connected)
        streams.open(n, *req);
      else
        unavailable.push_back(n.info.name);
    }
    if (!unavailable.empty())
      merger.notice(nodeStatus(
          ::relay::NODE_UNAVAILABLE, unavailable,
          fmt::format("{} of {} nodes are unavailable", unavailable.size(), nodes.size())));

    // Without follow, `number` counts over the cluster: the last ones are kept until every node
    // has answered, the first ones end the request once sent.
    const bool last_n = !req->follow() && !req->first() && req->number() > 0;
    const bool first_n = !req->follow() && req->first() && req->number() > 0;
    std::deque<observer::GetFlowsResponse> tail;
    uint64_t sent = 0;
    // The stream's headers go first: with gRPC 1.51 a first message written with the buffer
    // hint holds them back, and a later flushing write does not release them.
    writer->SendInitialMetadata();
    // What the merge has due is taken in batches and written with gRPC's buffer hint but for
    // the last of a batch, so a burst goes out in a few transport writes, not one per flow (as a
    // node's follower writes); a batch is only what is due now, so a quiet stream stays prompt.
    const auto buffered = grpc::WriteOptions().set_buffer_hint();
    std::vector<observer::GetFlowsResponse> batch;
    std::vector<const observer::GetFlowsResponse*> out;
    batch.reserve(kWriteBatch);
    bool done = false;
    auto lastCheck = std::chrono::steady_clock::now();
    while (!done) {
      if (stopping_ || ctx->IsCancelled()) break;
      batch.clear();
      auto r = merger.popBatch(batch, kWriteBatch, kPollInterval);
      if (r == FlowMerger::Pop::kEnd) break;
      out.clear();
      for (auto& ev : batch) {
        if (ev.has_node_status() || (!last_n && !first_n)) {
          out.push_back(&ev);
        } else if (last_n) {
          tail.push_back(std::move(ev));
          if (tail.size() > req->number()) tail.pop_front();
        } else {
          out.push_back(&ev);
          if (++sent >= req->number()) {
            done = true;
            break;
          }
        }
      }
      for (size_t i = 0; i < out.size(); ++i) {
        if (!writer->Write(*out[i], i + 1 == out.size() ? grpc::WriteOptions() : buffered)) {
          done = true;
          break;
        }
      }
      // Following: nodes that connected (or came back) since the stream began join it.
      if (!done && req->follow() && std::chrono::steady_clock::now() - lastCheck >= kPollInterval) {
        lastCheck = std::chrono::steady_clock::now();
        observer::GetFlowsRequest fresh = *req;
        fresh.set_number(0);
        fresh.clear_since();
        for (const auto& n : pool_.nodes()) {
          if (!n.connected || streams.active(n.info.name)) continue;
          streams.open(n, fresh);
          merger.notice(nodeStatus(::relay::NODE_CONNECTED, {n.info.name},
                                   fmt::format("node {} connected", n.info.name)));
        }
      }
    }
    for (size_t i = 0; i < tail.size(); ++i)
      if (ctx->IsCancelled() ||
          !writer->Write(tail[i], i + 1 == tail.size() || i % kWriteBatch == kWriteBatch - 1
                                      ? grpc::WriteOptions()
                                      : buffered))
        break;
    merger.close();
    streams.stopAll();
    // Every node refused the request (a filter an older node does not know): say why, as a
    // single node would have.
    if (auto err = streams.commonError(); !err.ok() && sent == 0 && tail.empty()) return err;
    return grpc::Status::OK;
  }

  grpc::Status GetAgentEvents(grpc::ServerContext*, const observer::GetAgentEventsRequest*,
                              grpc::ServerWriter<observer::GetAgentEventsResponse>*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "hubble-relay does not serve agent events; ask a node's Hubble server");
  }

  grpc::Status GetDebugEvents(grpc::ServerContext*, const observer::GetDebugEventsRequest*,
                              grpc::ServerWriter<observer::GetDebugEventsResponse>*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "hubble-relay does not serve debug events; ask a node's Hubble server");
  }

  grpc::Status ServerStatus(grpc::ServerContext*, const observer::ServerStatusRequest*,
                            observer::ServerStatusResponse* resp) override {
    auto nodes = pool_.nodes();
    using Answer = std::optional<observer::ServerStatusResponse>;
    auto answers = fanOut<Answer>(nodes, [&](const NodeConn& n) -> Answer {
      if (!n.connected) return std::nullopt;
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + pool_.options().dial_timeout);
      observer::ServerStatusResponse r;
      auto st = observer::Observer::NewStub(n.channel)->ServerStatus(&c, {}, &r);
      if (!st.ok()) return std::nullopt;
      return r;
    });
    uint32_t connected = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (!answers[i]) {
        resp->add_unavailable_nodes(nodes[i].info.name);
        continue;
      }
      ++connected;
      const auto& a = *answers[i];
      resp->set_num_flows(resp->num_flows() + a.num_flows());
      resp->set_max_flows(resp->max_flows() + a.max_flows());
      resp->set_seen_flows(resp->seen_flows() + a.seen_flows());
      // Summed uptimes mean nothing: the longest-running node's.
      resp->set_uptime_ns(std::max(resp->uptime_ns(), a.uptime_ns()));
    }
    resp->mutable_num_connected_nodes()->set_value(connected);
    resp->mutable_num_unavailable_nodes()->set_value(static_cast<uint32_t>(nodes.size()) -
                                                     connected);
    resp->set_version(opts_.version);
    return grpc::Status::OK;
  }

  grpc::Status GetNodes(grpc::ServerContext*, const observer::GetNodesRequest*,
                        observer::GetNodesResponse* resp) override {
    auto nodes = pool_.nodes();
    using Answer = std::optional<observer::Node>;
    auto answers = fanOut<Answer>(nodes, [&](const NodeConn& n) -> Answer {
      if (!n.connected) return std::nullopt;
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + pool_.options().dial_timeout);
      observer::GetNodesResponse r;
      auto st = observer::Observer::NewStub(n.channel)->GetNodes(&c, {}, &r);
      if (!st.ok() || r.nodes_size() == 0) return std::nullopt;
      return r.nodes(0);
    });
    for (size_t i = 0; i < nodes.size(); ++i) {
      auto* out = resp->add_nodes();
      if (answers[i]) *out = *answers[i];
      out->set_name(nodes[i].info.name);
      out->set_address(nodes[i].info.address);
      out->set_state(answers[i] ? ::relay::NODE_CONNECTED : ::relay::NODE_UNAVAILABLE);
      out->mutable_tls()->set_enabled(nodes[i].tls);
      out->mutable_tls()->set_server_name(nodes[i].tls ? nodes[i].tls_server_name : "");
    }
    return grpc::Status::OK;
  }

  grpc::Status GetNamespaces(grpc::ServerContext*, const observer::GetNamespacesRequest*,
                             observer::GetNamespacesResponse* resp) override {
    auto nodes = pool_.nodes();
    using Answer = std::optional<observer::GetNamespacesResponse>;
    auto answers = fanOut<Answer>(nodes, [&](const NodeConn& n) -> Answer {
      if (!n.connected) return std::nullopt;
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + pool_.options().dial_timeout);
      observer::GetNamespacesResponse r;
      if (!observer::Observer::NewStub(n.channel)->GetNamespaces(&c, {}, &r).ok())
        return std::nullopt;
      return r;
    });
    std::set<std::pair<std::string, std::string>> all;
    for (const auto& a : answers)
      if (a)
        for (const auto& ns : a->namespaces()) all.emplace(ns.cluster(), ns.namespace_());
    for (const auto& [cluster, name] : all) {
      auto* ns = resp->add_namespaces();
      ns->set_cluster(cluster);
      ns->set_namespace_(name);
    }
    return grpc::Status::OK;
  }

 private:
  // The node streams of one GetFlows request: a reader thread per node pushing into the merger.
  class Streams {
   public:
    explicit Streams(FlowMerger& merger) : merger_(merger) {}
    ~Streams() { stopAll(); }

    void open(const NodeConn& n, const observer::GetFlowsRequest& req) {
      auto s = std::make_shared<Stream>();
      s->name = n.info.name;
      s->id = merger_.addSource(n.info.name);
      {
        std::lock_guard lock(mu_);
        streams_.push_back(s);
      }
      s->thread = std::thread([this, s, channel = n.channel, req] {
        auto stub = observer::Observer::NewStub(channel);
        auto reader = stub->GetFlows(&s->ctx, req);
        observer::GetFlowsResponse r;
        bool any = false;
        while (reader->Read(&r)) {
          any = true;
          if (!merger_.push(s->id, std::move(r))) {
            s->ctx.TryCancel();
            break;
          }
          r.Clear();
        }
        auto st = reader->Finish();
        // While following, a node's stream ends only when the node goes away (or `until` passed).
        const bool gone = !st.ok() || (req.follow() && !req.has_until());
        if (gone && !merger_.closed()) {
          log()->info("node stream ended name={} code={} message=\"{}\"", s->name,
                      static_cast<int>(st.error_code()), st.error_message());
          if (st.ok())
            merger_.notice(nodeStatus(::relay::NODE_UNAVAILABLE, {s->name},
                                      fmt::format("{}: the node ended the stream", s->name)));
          else
            merger_.notice(nodeStatus(::relay::NODE_ERROR, {s->name},
                                      fmt::format("{}: {}", s->name, st.error_message())));
        }
        {
          std::lock_guard lock(mu_);
          if (st.ok())
            ++completed_;
          else if (!any && !merger_.closed())
            errors_.push_back(st);
        }
        s->failed = gone;
        merger_.end(s->id);
        s->ended_at = std::chrono::steady_clock::now();
        s->done = true;
      });
    }

    // True while a stream from `name` is running, or failed less than a second ago (its
    // channel may not have noticed yet that the node is gone).
    bool active(const std::string& name) {
      std::lock_guard lock(mu_);
      for (const auto& s : streams_) {
        if (s->name != name) continue;
        if (!s->done) return true;
        if (s->failed && std::chrono::steady_clock::now() - s->ended_at.load() < kRejoinHoldOff)
          return true;
      }
      return false;
    }

    void stopAll() {
      std::vector<std::shared_ptr<Stream>> all;
      {
        std::lock_guard lock(mu_);
        all = streams_;
      }
      for (auto& s : all) s->ctx.TryCancel();
      for (auto& s : all)
        if (s->thread.joinable()) s->thread.join();
    }

    // The error every node answered with, when none answered otherwise.
    grpc::Status commonError() {
      std::lock_guard lock(mu_);
      if (errors_.empty() || completed_ > 0 || errors_.size() != streams_.size())
        return grpc::Status::OK;
      for (const auto& e : errors_)
        if (e.error_code() != errors_.front().error_code()) return grpc::Status::OK;
      return errors_.front();
    }

   private:
    struct Stream {
      std::string name;
      int id = 0;
      grpc::ClientContext ctx;
      std::thread thread;
      std::atomic<bool> done{false}, failed{false};
      std::atomic<std::chrono::steady_clock::time_point> ended_at{};
    };
    FlowMerger& merger_;
    std::mutex mu_;
    std::vector<std::shared_ptr<Stream>> streams_;
    std::vector<grpc::Status> errors_;
    size_t completed_ = 0;
  };

  PeerPool& pool_;
  const RelayOptions& opts_;
  std::atomic<bool> stopping_{false};
};

RelayServer::RelayServer(PeerPool& pool, RelayOptions opts) : pool_(pool), opts_(std::move(opts)) {}

RelayServer::~RelayServer() { stop(); }

namespace {

std::string listenAddress(const std::string& a) { return a.front() == ':' ? "0.0.0.0" + a : a; }

// The client CAs as one bundle at `path`, rewritten (a temporary, then a rename: the certificate
// watcher never reads half a file) when they changed. A CA file that does not load leaves the
// bundle as it was: the CAs in force stay.
Status writeBundle(const std::vector<std::string>& files, const std::string& path) {
  std::string bundle;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in || ss.str().empty())
      return makeError(ErrorCode::kFailedPrecondition,
                       "--tls-relay-client-ca-files {}: cannot be read", f);
    bundle += ss.str();
    if (!bundle.ends_with('\n')) bundle += '\n';
  }
  {
    std::ifstream old(path);
    std::stringstream ss;
    ss << old.rdbuf();
    if (old && ss.str() == bundle) return okStatus();
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << bundle;
    if (!out.flush()) return makeError(ErrorCode::kInternal, "{}: cannot be written", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return makeError(ErrorCode::kInternal, "{}: cannot be renamed: {}", tmp, std::strerror(errno));
  return okStatus();
}

}  // namespace

int RelayServer::metricsPort() const { return metrics_server_ ? metrics_server_->port() : 0; }

Status RelayServer::start() {
  service_ = std::make_unique<Service>(pool_, opts_);
  if (opts_.listen_address.empty())
    return makeError(ErrorCode::kInvalidArgument, "--listen-address: empty");
  registry_ = std::make_unique<metrics::Registry>();
  CILIUM_ASSIGN_OR_RETURN(auto grpc_metrics, GrpcServerMetrics::create(*registry_));
  CILIUM_RETURN_IF_ERROR(registry_->addCollector(
      {"hubble_relay_pool_peer_connection_status",
       "Measures the connectivity status of all peers by counting the number of peers for each "
       "given connection status.",
       metrics::MetricType::kGauge,
       {"status"}},
      [this](metrics::SampleSink& sink) {
        for (const auto& [state, n] : pool_.status().states)
          sink.add({state}, static_cast<double>(n));
        sink.add({"NIL_CONNECTION"}, 0);  // every node has a channel
      }));
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (opts_.tls.enabled) {
    const TlsFlagNames names{"--tls-relay-server-cert-file", "--tls-relay-server-key-file",
                             "--tls-relay-client-ca-files"};
    // The files must load now: the watcher would only log it, and serve nothing.
    if (auto checked = serverTlsCredentials(opts_.tls, names); !checked.ok())
      return checked.error();
    std::string roots;
    if (!opts_.tls.client_ca_files.empty()) {
      char dir[] = "/tmp/hubble-relay-ca.XXXXXX";
      if (!::mkdtemp(dir))
        return makeError(ErrorCode::kInternal, "cannot make a directory for the client CAs: {}",
                         std::strerror(errno));
      ca_dir_ = dir;
      ca_files_ = opts_.tls.client_ca_files;
      roots = ca_dir_ + "/client-ca.pem";
      CILIUM_RETURN_IF_ERROR(writeBundle(ca_files_, roots));
    }
    auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        opts_.tls.key_file, opts_.tls.cert_file, roots,
        static_cast<unsigned>(std::max<int64_t>(1, opts_.cert_reload_interval.count())));
    grpc::experimental::TlsServerCredentialsOptions o(provider);
    o.watch_identity_key_cert_pairs();
    if (!roots.empty()) {
      o.watch_root_certs();
      o.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    } else {
      o.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    }
    creds = grpc::experimental::TlsServerCredentials(o);
  }
  health_ = std::make_unique<HealthService>();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listenAddress(opts_.listen_address), creds, &port_);
  builder.RegisterService(service_.get());
  builder.RegisterService(health_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> ic;
  ic.push_back(GrpcServerMetrics::interceptor(grpc_metrics));
  builder.experimental().SetInterceptorCreators(std::move(ic));
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    return makeError(ErrorCode::kUnavailable, "--listen-address {}: cannot listen",
                     opts_.listen_address);
  }
  if (!opts_.health_listen_address.empty()) {
    grpc::ServerBuilder hb;
    hb.AddListeningPort(listenAddress(opts_.health_listen_address),
                        grpc::InsecureServerCredentials(), &health_port_);
    hb.RegisterService(health_.get());
    health_server_ = hb.BuildAndStart();
    if (!health_server_ || health_port_ == 0) {
      stop();
      return makeError(ErrorCode::kUnavailable, "--health-listen-address {}: cannot listen",
                       opts_.health_listen_address);
    }
  }
  if (!opts_.metrics_listen_address.empty()) {
    metrics_server_ =
        std::make_unique<metrics::MetricsServer>(*registry_, opts_.metrics_listen_address);
    if (auto st = metrics_server_->start(); !st.ok()) {
      stop();
      return makeError(ErrorCode::kUnavailable, "--metrics-listen-address {}: {}",
                       opts_.metrics_listen_address, st.error().message());
    }
  }
  stopping_ = false;
  housekeeper_ = std::thread([this] { housekeeping(); });
  log()->info(
      "hubble-relay listening address={} port={} tls={} mtls={} health_port={} metrics_port={}",
      opts_.listen_address, port_, opts_.tls.enabled,
      opts_.tls.enabled && !opts_.tls.client_ca_files.empty(), health_port_, metricsPort());
  return okStatus();
}

void RelayServer::housekeeping() {
  bool last = false, first = true;
  do {
    auto st = pool_.status();
    // As Cilium's relay: ready while it learns the cluster's nodes and can reach one of them.
    const bool serving = st.peer_service_connected && st.available_peers > 0;
    if (first || serving != last) {
      log()->info("health serving={} peer_service_connected={} available_peers={}", serving,
                  st.peer_service_connected, st.available_peers);
      health_->setServing(serving);
      serving_ = serving;
      last = serving;
      first = false;
    }
    if (!ca_dir_.empty()) {
      if (auto w = writeBundle(ca_files_, ca_dir_ + "/client-ca.pem"); !w.ok())
        log()->debug("client CAs not reloaded: {}", w.error().message());
    }
    std::unique_lock lock(stop_mu_);
    if (stop_cv_.wait_for(lock, opts_.health_interval, [&] { return stopping_.load(); })) break;
  } while (true);
}

void RelayServer::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (housekeeper_.joinable()) housekeeper_.join();
  if (health_) health_->shutdown();
  if (metrics_server_) {
    metrics_server_->stop();
    metrics_server_.reset();
  }
  if (health_server_) {
    health_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    health_server_->Wait();
    health_server_.reset();
  }
  if (server_) {
    service_->shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }
  if (!ca_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(ca_dir_, ec);
    ca_dir_.clear();
  }
}

}  // namespace cilium::hubble::relay
