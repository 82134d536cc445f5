// Hubble and metrics as daemon components: configuration keys in, servers up with the daemon,
// down (socket removed) when it stops; nothing served when disabled.
#include "agent/hubble/component.h"
#include "agent/hubble/metrics.h"
#include "agent/hubble/metrics_spec.h"

#include <httplib.h>
#include <sys/stat.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/daemon/daemon.h"
#include "agent/metrics/component.h"
#include "tests/agent/hubble/event_builder.h"
#include "tests/harness/temp_dir.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;

daemon::Config testConfig(const testing::TempDir& dir, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--state-dir=" + dir.file("run"),
                                   "--socket-path=" + dir.file("run/cilium.sock"),
                                   "--hubble-socket-path=" + dir.file("run/hubble.sock"),
                                   "--ipv4-range=10.200.0.0/24", "--node-name=node-1"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto loaded = daemon::loadConfig(args, daemon::Environment::system());
  EXPECT_TRUE(loaded.ok()) << loaded.error().toString();
  return loaded.ok() ? loaded->config : daemon::Config{};
}

daemon::DaemonOptions unprivileged() {
  daemon::DaemonOptions o;
  o.manage_bpffs = false;
  return o;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

TEST(HubbleComponentTest, ServesFlowsAndMetricsWithTheDaemon) {
  testing::TempDir dir;
  auto cfg = testConfig(dir, {"--enable-hubble", "--hubble-event-buffer-capacity=100"});
  // Port 0 (a free port) is for tests only; the configuration keys refuse it.
  cfg.prometheus_serve_addr = "127.0.0.1:0";
  cfg.hubble_metrics_server = "127.0.0.1:0";
  metrics::Registry agent_reg, hubble_reg;
  auto opts = hubble::componentOptions(cfg, cfg.node_name, "9.9.9");
  EXPECT_EQ(opts.pipeline.ring_capacity, 100u);
  // Flows name nodes as Hubble does: "cluster/node".
  EXPECT_EQ(opts.pipeline.node_name, "default/node-1");
  auto comp = std::make_unique<hubble::HubbleComponent>(opts, nullptr, nullptr, &hubble_reg);
  auto* hub = comp.get();
  auto agent_metrics = std::make_unique<metrics::MetricsComponent>(agent_reg);
  auto hubble_metrics = std::make_unique<metrics::MetricsComponent>(
      hubble_reg, &daemon::Config::hubble_metrics_server, "hubble-metrics");
  auto* am = agent_metrics.get();
  auto* hm = hubble_metrics.get();
  (void)agent_reg.counter("cilium_test_total", "t");

  daemon::Daemon d(cfg, unprivileged());
  d.addComponent(std::move(comp));
  d.addComponent(std::move(agent_metrics));
  d.addComponent(std::move(hubble_metrics));
  auto st = d.start();
  ASSERT_TRUE(st.ok()) << st.error().toString();

  hub->pipeline().onEvent(hubble::testing::makeEvent(hubble::testing::policyDrop()));
  ASSERT_TRUE(hub->pipeline().flush(5s));
  auto stub = observer::Observer::NewStub(grpc::CreateChannel(
      "unix://" + dir.file("run/hubble.sock"), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  observer::ServerStatusResponse status;
  ASSERT_TRUE(stub->ServerStatus(&ctx, {}, &status).ok());
  EXPECT_EQ(status.max_flows(), 100u);
  EXPECT_EQ(status.seen_flows(), 1u);
  EXPECT_EQ(status.version(), "9.9.9");

  // cilium-dbg status reads this: Hubble is on, with its ring's counters.
  auto health = d.status();
  ASSERT_TRUE(health.hubble);
  EXPECT_EQ(health.hubble->state, api::StatusState::kOk);
  ASSERT_TRUE(health.hubble->observer);
  EXPECT_EQ(health.hubble->observer->max_flows, 100);
  EXPECT_EQ(health.hubble->observer->seen_flows, 1);
  // TLS is on by default and no certificate is configured: :4244 is not served, and says so.
  EXPECT_EQ(hub->server()->tcpPort(), 0);
  EXPECT_NE(health.hubble->msg.find("hubble-tls-cert-file"), std::string::npos)
      << health.hubble->msg;

  ASSERT_NE(am->server(), nullptr);
  ASSERT_NE(hm->server(), nullptr);
  httplib::Client a("127.0.0.1", am->server()->port()), h("127.0.0.1", hm->server()->port());
  auto ra = a.Get("/metrics");
  auto rh = h.Get("/metrics");
  ASSERT_TRUE(ra && rh);
  EXPECT_NE(ra->body.find("cilium_test_total"), std::string::npos);
  EXPECT_NE(rh->body.find("hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1"),
            std::string::npos)
      << rh->body;

  d.stop();
  EXPECT_FALSE(exists(dir.file("run/hubble.sock")));
}

TEST(HubbleComponentTest, DisabledServesNothing) {
  testing::TempDir dir;
  auto cfg = testConfig(dir, {});
  auto comp = std::make_unique<hubble::HubbleComponent>(hubble::componentOptions(cfg, cfg.node_name, "v"), nullptr,
                                                        nullptr, nullptr);
  auto* hub = comp.get();
  metrics::Registry unused;
  daemon::Daemon d(cfg, unprivileged());
  d.addComponent(std::move(comp));
  d.addComponent(std::make_unique<metrics::MetricsComponent>(unused));
  ASSERT_TRUE(d.start().ok());
  EXPECT_EQ(hub->server(), nullptr);
  auto health = d.status();
  ASSERT_TRUE(health.hubble);
  EXPECT_EQ(health.hubble->state, api::StatusState::kDisabled);
  EXPECT_FALSE(exists(dir.file("run/hubble.sock")));
  hub->pipeline().onEvent(hubble::testing::makeEvent(hubble::testing::EventSpec{}));  // no crash
  d.stop();
}

// The "http" metrics from L7 flows: requests by method/protocol, responses by status, the
// latency histogram, each with the reporter (server: the proxy saw it on the server's ingress).
TEST(HubbleComponentTest, HttpMetricsFromL7Flows) {
  hubble::PipelineOptions po;
  po.node_name = "n";
  hubble::FlowPipeline p(po, nullptr, nullptr);
  metrics::Registry reg;
  auto spec = hubble::parseMetricsSpec("http flow");
  ASSERT_TRUE(spec.ok()) << spec.error().toString();
  ASSERT_TRUE(hubble::registerHubbleMetrics(reg, p, *spec).ok());
  ASSERT_TRUE(p.start().ok());
  proxy::AccessRecord r;
  r.ingress = true;
  r.src_ip = "10.200.0.11";
  r.dst_ip = "10.200.0.12";
  r.method = "POST";
  r.url = "http://deathstar/v1/request-landing";
  r.protocol = "HTTP/1.1";
  p.onAccessRecord(r);
  p.onAccessRecord(r);
  r.type = proxy::AccessRecord::Type::kResponse;
  r.code = 200;
  r.latency_ns = 2'000'000;
  p.onAccessRecord(r);
  ASSERT_TRUE(p.flush(5s));
  auto text = reg.expose();
  EXPECT_NE(text.find("hubble_http_requests_total{method=\"POST\",protocol=\"HTTP/1.1\","
                      "reporter=\"server\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hubble_http_responses_total{method=\"POST\",status=\"200\","
                      "reporter=\"server\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hubble_http_request_duration_seconds_count{method=\"POST\","
                      "reporter=\"server\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hubble_flows_processed_total{type=\"L7\",subtype=\"HTTP\","
                      "verdict=\"FORWARDED\"} 3"),
            std::string::npos)
      << text;
}

// The "dns" metrics from the DNS proxy's flows, labeled as Hubble's: queries (a denied one
// with rcode "Policy denied"), responses by rcode, the response record types; the `query`
// option adds the name.
TEST(HubbleComponentTest, DnsMetricsFromL7Flows) {
  hubble::PipelineOptions po;
  po.node_name = "n";
  hubble::FlowPipeline p(po, nullptr, nullptr);
  metrics::Registry reg;
  auto spec = hubble::parseMetricsSpec("dns:query;ignoreAAAA flow");
  ASSERT_TRUE(spec.ok()) << spec.error().toString();
  ASSERT_TRUE(hubble::registerHubbleMetrics(reg, p, *spec).ok());
  ASSERT_TRUE(p.start().ok());
  proxy::AccessRecord r;
  r.ingress = false;
  r.src_ip = "10.200.0.11";
  r.dst_ip = "10.200.0.12";
  r.l4_protocol = 17;
  r.dns = proxy::AccessRecord::Dns{"a.test.", {}, {}, {"A"}, {}, 0, 0, "proxy"};
  p.onAccessRecord(r);
  r.type = proxy::AccessRecord::Type::kResponse;
  r.dns->ips = {"10.0.0.1"};
  r.dns->rrtypes = {"A"};
  p.onAccessRecord(r);
  auto denied = r;
  denied.type = proxy::AccessRecord::Type::kRequest;
  denied.verdict = proxy::AccessRecord::Verdict::kDenied;
  denied.dns = proxy::AccessRecord::Dns{"blocked.test.", {}, {}, {"A"}, {}, 0, 0, "proxy"};
  p.onAccessRecord(denied);
  auto aaaa = denied;
  aaaa.dns->qtypes = {"AAAA"};
  p.onAccessRecord(aaaa);  // ignoreAAAA
  ASSERT_TRUE(p.flush(5s));
  auto text = reg.expose();
  for (const char* want :
       {"hubble_dns_queries_total{rcode=\"\",qtypes=\"A\",ips_returned=\"0\",query=\"a.test.\"} 1",
        "hubble_dns_queries_total{rcode=\"Policy denied\",qtypes=\"A\",ips_returned=\"0\","
        "query=\"blocked.test.\"} 1",
        "hubble_dns_responses_total{rcode=\"No Error\",qtypes=\"A\",ips_returned=\"1\","
        "query=\"a.test.\"} 1",
        "hubble_dns_response_types_total{type=\"A\",qtypes=\"A\",query=\"a.test.\"} 1",
        "hubble_flows_processed_total{type=\"L7\",subtype=\"DNS\",verdict=\"FORWARDED\"} 2"})
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  EXPECT_EQ(text.find("AAAA"), std::string::npos) << text;
  EXPECT_FALSE(hubble::parseMetricsSpec("dns:bogus").ok());
}

// hubble-metrics as Cilium's: only the metrics listed, with the context labels asked for.
TEST(HubbleComponentTest, MetricsWithContexts) {
  hubble::PipelineOptions po;
  po.node_name = "n";
  hubble::StaticResolver res;
  res.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                  {*IpAddr::parse("10.200.0.11")});
  res.addEndpoint({2, 257, "server", "shop", {"k8s:app=server"}}, {*IpAddr::parse("10.200.0.12")});
  hubble::FlowPipeline p(po, &res, &res);
  metrics::Registry reg;
  auto spec = hubble::parseMetricsSpec(
      "drop:sourceContext=pod;destinationContext=namespace flow:labelsContext=source_app,"
      "destination_namespace,traffic_direction");
  ASSERT_TRUE(spec.ok()) << spec.error().toString();
  ASSERT_TRUE(hubble::registerHubbleMetrics(reg, p, *spec).ok());
  ASSERT_TRUE(p.start().ok());
  p.onEvent(hubble::testing::makeEvent(hubble::testing::policyDrop()));
  ASSERT_TRUE(p.flush(5s));
  auto text = reg.expose();
  EXPECT_NE(text.find("hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"TCP\",source=\"default/"
                      "client\",destination=\"shop\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hubble_flows_processed_total{type=\"Drop\",subtype=\"\",verdict=\"DROPPED\","
                      "source_app=\"client\",destination_namespace=\"shop\",traffic_direction="
                      "\"ingress\"} 1"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("hubble_tcp_flags_total"), std::string::npos);  // not asked for
  EXPECT_NE(text.find("hubble_lost_events_total"), std::string::npos);
  for (const char* bad : {"nosuch", "drop:sourceContext=bogus", "drop:labelsContext=nope",
                          "drop:color=red", "drop:sourceContext"})
    EXPECT_FALSE(hubble::parseMetricsSpec(bad).ok()) << bad;
  EXPECT_TRUE(hubble::parseMetricsSpec("dns:query;ignoreAAAA").ok());
  EXPECT_TRUE(hubble::parseMetricsSpec("dns http httpV2 tcp,icmp").ok());
  auto cfg_bad = daemon::loadConfig({"--hubble-metrics=drop:sourceContext=x"},
                                    daemon::Environment::system());
  EXPECT_FALSE(cfg_bad.ok());
}

TEST(HubbleComponentTest, ConfigKeysAreValidated) {
  auto bad =
      daemon::loadConfig({"--hubble-event-buffer-capacity=0"}, daemon::Environment::system());
  EXPECT_FALSE(bad.ok());
  auto bad_addr =
      daemon::loadConfig({"--hubble-metrics-server=nohost"}, daemon::Environment::system());
  EXPECT_FALSE(bad_addr.ok());
  auto good =
      daemon::loadConfig({"--hubble-metrics-server=:9965", "--hubble-event-queue-size=2048"},
                         daemon::Environment::system());
  ASSERT_TRUE(good.ok()) << good.error().toString();
  EXPECT_EQ(good->config.hubble_metrics_server, ":9965");
  EXPECT_EQ(good->config.hubble_event_queue_size, 2048u);
}

}  // namespace
}  // namespace cilium
