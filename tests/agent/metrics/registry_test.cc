// The exposition text Prometheus parses, and the cilium_* / hubble_* families on it.
#include "agent/metrics/registry.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/hubble/metrics.h"
#include "agent/metrics/agent_metrics.h"
#include "agent/metrics/server.h"
#include "tests/agent/hubble/event_builder.h"

namespace cilium::metrics {
namespace {

using namespace std::chrono_literals;

TEST(RegistryTest, ExpositionFormat) {
  Registry r;
  auto c = r.counter("test_requests_total", "Requests.\nSecond line \\ here", {"code", "path"});
  ASSERT_TRUE(c.ok());
  (*c)->with({"200", "/a\"b\\c\nd"}).inc(3);
  (*c)->with({"500", "/"}).inc();
  auto g = r.gauge("test_temperature", "Gauge");
  ASSERT_TRUE(g.ok());
  (*g)->get().set(-1.5);
  auto h = r.histogram("test_latency_seconds", "Latency", {"op"}, {0.1, 1});
  ASSERT_TRUE(h.ok());
  (*h)->with({"get"}).observe(0.05);
  (*h)->with({"get"}).observe(0.5);
  (*h)->with({"get"}).observe(7);
  EXPECT_EQ(r.expose(),
            "# HELP test_latency_seconds Latency\n"
            "# TYPE test_latency_seconds histogram\n"
            "test_latency_seconds_count{op=\"get\"} 3\n"
            "test_latency_seconds_sum{op=\"get\"} 7.55\n"
            "test_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 1\n"
            "test_latency_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
            "test_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"
            "# HELP test_requests_total Requests.\\nSecond line \\\\ here\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{code=\"200\",path=\"/a\\\"b\\\\c\\nd\"} 3\n"
            "test_requests_total{code=\"500\",path=\"/\"} 1\n"
            "# HELP test_temperature Gauge\n"
            "# TYPE test_temperature gauge\n"
            "test_temperature -1.5\n");
}

TEST(RegistryTest, CountersOnlyGoUp) {
  Registry r;
  auto c = (*r.counter("x_total", "x"))->get();
  c.inc(2);
  c.inc(-5);
  c.inc(std::nan(""));
  EXPECT_EQ(c.value(), 2);
}

TEST(RegistryTest, NamesAreChecked) {
  Registry r;
  EXPECT_TRUE(r.counter("ok_total", "x").ok());
  EXPECT_EQ(r.counter("ok_total", "x").error().code(), ErrorCode::kAlreadyExists);
  EXPECT_FALSE(r.counter("1bad", "x").ok());
  EXPECT_FALSE(r.counter("bad-name", "x").ok());
  EXPECT_FALSE(r.gauge("g", "x", {"__reserved"}).ok());
  EXPECT_FALSE(r.histogram("h", "x", {"le"}).ok());
  EXPECT_FALSE(r.histogram("h2", "x", {}, {1, 0.5}).ok());
}

TEST(RegistryTest, CollectorsRunAtScrapeTime) {
  Registry r;
  int calls = 0;
  ASSERT_TRUE(
      r.addCollector({"things", "Things", MetricType::kGauge, {"kind"}}, [&](SampleSink& s) {
         ++calls;
         s.add({"a"}, calls);
         s.add({"wrong", "arity"}, 1);  // skipped
       }).ok());
  EXPECT_NE(r.expose().find("things{kind=\"a\"} 1\n"), std::string::npos);
  EXPECT_NE(r.expose().find("things{kind=\"a\"} 2\n"), std::string::npos);
  EXPECT_EQ(r.expose().find("wrong"), std::string::npos);
}

TEST(RegistryTest, LabelsInDeclaredOrderSamplesSortedFamiliesWithoutSamplesListed) {
  Registry r;
  auto c = r.counter("z_total", "Z", {"zone", "app"});
  ASSERT_TRUE(c.ok());
  (*c)->with({"b", "x"}).inc();
  (*c)->with({"a", "y"}).inc(2);
  (*c)->with({"a", "x"}).inc(3);
  ASSERT_TRUE(r.gauge("a_empty", "Nothing yet", {"k"}).ok());
  ASSERT_TRUE(r.histogram("m_empty_seconds", "Nothing yet", {}).ok());
  EXPECT_EQ(r.expose(),
            "# HELP a_empty Nothing yet\n"
            "# TYPE a_empty gauge\n"
            "# HELP m_empty_seconds Nothing yet\n"
            "# TYPE m_empty_seconds histogram\n"
            "# HELP z_total Z\n"
            "# TYPE z_total counter\n"
            "z_total{zone=\"a\",app=\"x\"} 3\n"
            "z_total{zone=\"a\",app=\"y\"} 2\n"
            "z_total{zone=\"b\",app=\"x\"} 1\n");
  EXPECT_EQ(r.counter("dup_labels_total", "x", {"a", "a"}).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.gauge("a_empty", "again").error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(r.addCollector({"z_total", "again", MetricType::kGauge, {}}, {}).error().code(),
            ErrorCode::kAlreadyExists);
}

TEST(RegistryTest, ManySamplesComeOutSortedByLabelValues) {
  Registry r;
  auto* c = *r.counter("ports_total", "P", {"protocol", "port"});
  std::vector<std::string> want;
  for (int i = 0; i < 500; ++i) {
    // Created in a scrambled order.
    int port = (i * 7919) % 500;
    std::string proto = i % 3 == 0 ? "UDP" : "TCP";
    c->with({proto, std::to_string(port)}).inc(port + 1);
    want.push_back("ports_total{protocol=\"" + proto + "\",port=\"" + std::to_string(port) +
                   "\"} " + std::to_string(port + 1));
  }
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  std::vector<std::string> got;
  std::istringstream in(r.expose());
  for (std::string line; std::getline(in, line);)
    if (!line.starts_with("#")) got.push_back(line);
  EXPECT_EQ(got, want);  // in order, each once
}

TEST(RegistryTest, ChildrenAreSharedAndKeepTheirValues) {
  Registry r;
  auto* g = *r.gauge("g", "G", {"k"});
  g->with({"a"}).set(5);
  g->with({"a"}).add(-1.5);
  EXPECT_EQ(g->with({"a"}).value(), 3.5);
  auto* c = *r.counter("c_total", "C", {"k"});
  auto kept = c->with({"a"});
  for (int i = 0; i < 1000; ++i) c->with({"a"}).inc();
  kept.inc(0.5);
  EXPECT_EQ(kept.value(), 1000.5);
  EXPECT_NE(r.expose().find("c_total{k=\"a\"} 1000.5\n"), std::string::npos);
}

TEST(AgentMetricsTest, DatapathCountersUnderCiliumNames) {
  Registry r;
  int reads = 0;
  DatapathSources src;
  src.read_metrics = [&]() -> Result<std::vector<datapath::MetricsEntry>> {
    ++reads;
    return std::vector<datapath::MetricsEntry>{
        {0, METRIC_EGRESS, 10, 1000},
        {0, METRIC_INGRESS, 7, 700},
        {DROP_POLICY, METRIC_INGRESS, 3, 222},
        {DROP_POLICY_DENY, METRIC_EGRESS, 1, 74},
    };
  };
  src.read_event_counters = []() -> Result<datapath::EventCounters> {
    return datapath::EventCounters{100, 2, 5};
  };
  ASSERT_TRUE(addDatapathMetrics(r, src).ok());
  auto text = r.expose();
  EXPECT_NE(text.find("cilium_forward_count_total{direction=\"EGRESS\"} 10\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("cilium_forward_bytes_total{direction=\"INGRESS\"} 700\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("cilium_drop_count_total{reason=\"Policy denied\",direction=\"INGRESS\"} 3\n"),
      std::string::npos);
  EXPECT_NE(text.find("cilium_drop_bytes_total{reason=\"Policy denied by denylist\",direction="
                      "\"EGRESS\"} 74\n"),
            std::string::npos);
  EXPECT_NE(text.find("cilium_datapath_events_total{outcome=\"lost\"} 2\n"), std::string::npos);
  EXPECT_EQ(reads, 1);  // one map walk per scrape
}

TEST(AgentMetricsTest, ControlPlaneHooks) {
  Registry r;
  auto m = AgentMetrics::create(r);
  ASSERT_TRUE(m.ok());
  (*m)->endpoint_regeneration_time_stats->with({"total"}).observe(0.02);
  (*m)->k8s_client_api_calls->with({"10.0.0.1:6443", "GET", "200"}).inc();
  ASSERT_TRUE((*m)->setGaugeSource("cilium_endpoint", [](SampleSink& s) { s.add({}, 3); }).ok());
  ASSERT_TRUE((*m)->setGaugeSource("cilium_bpf_map_pressure",
                                   [](SampleSink& s) { s.add({"cilium_ct4_global"}, 0.25); })
                  .ok());
  EXPECT_EQ((*m)->setGaugeSource("cilium_nope", {}).error().code(), ErrorCode::kNotFound);
  auto text = r.expose();
  EXPECT_NE(text.find("cilium_endpoint 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cilium_bpf_map_pressure{map_name=\"cilium_ct4_global\"} 0.25\n"),
            std::string::npos);
  EXPECT_NE(text.find("cilium_endpoint_regeneration_time_stats_seconds_bucket{scope=\"total\","
                      "le=\"0.025\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("cilium_k8s_client_api_calls_total{host=\"10.0.0.1:6443\",method=\"GET\","
                      "return_code=\"200\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE cilium_identity gauge\n"), std::string::npos);
}

TEST(HubbleMetricsTest, FlowsFeedHubbleFamilies) {
  Registry r;
  hubble::PipelineOptions o;
  o.queue_size = 64;
  hubble::FlowPipeline p(o, nullptr, nullptr);
  ASSERT_TRUE(hubble::registerHubbleMetrics(r, p).ok());
  ASSERT_TRUE(p.start().ok());
  p.onEvent(hubble::testing::makeEvent(hubble::testing::EventSpec{}));
  p.onEvent(hubble::testing::makeEvent(hubble::testing::policyDrop()));
  ASSERT_TRUE(p.flush(5s));
  auto text = r.expose();
  EXPECT_NE(text.find("hubble_flows_processed_total{type=\"Trace\",subtype=\"to-endpoint\","
                      "verdict=\"FORWARDED\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("hubble_tcp_flags_total{flag=\"SYN\",family=\"IPv4\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("hubble_port_distribution_total{protocol=\"TCP\",port=\"8080\"} 2\n"),
            std::string::npos);
}

// The observer keeps children by small integer keys: every distinct label tuple must still be its
// own series with its own count (ports, protocols, ICMP types, verdicts, losses).
TEST(HubbleMetricsTest, EveryLabelTupleIsItsOwnSeries) {
  Registry r;
  hubble::PipelineOptions o;
  o.queue_size = 256;
  hubble::FlowPipeline p(o, nullptr, nullptr);
  ASSERT_TRUE(hubble::registerHubbleMetrics(r, p).ok());
  ASSERT_TRUE(p.start().ok());
  using hubble::testing::EventSpec;
  using hubble::testing::makeEvent;
  for (int i = 0; i < 3; ++i) {
    EventSpec tcp;
    tcp.dport = 80;
    p.onEvent(makeEvent(tcp));
  }
  EventSpec tcp443;
  tcp443.dport = 443;
  p.onEvent(makeEvent(tcp443));
  EventSpec udp80;
  udp80.proto = 17;
  udp80.dport = 80;
  p.onEvent(makeEvent(udp80));
  EventSpec reply;  // a reply is no request: no port sample
  reply.dport = 80;
  reply.ct_state = CT_REPLY;
  reply.tcp_flags = 0x12;  // SYN-ACK
  p.onEvent(makeEvent(reply));
  for (uint8_t type : {8, 8, 0}) {
    EventSpec icmp;
    icmp.proto = 1;
    auto ev = makeEvent(icmp);
    ev.tuple.icmp_type = type;
    p.onEvent(ev);
  }
  auto drop_icmp = hubble::testing::policyDrop();
  drop_icmp.proto = 1;
  p.onEvent(makeEvent(drop_icmp));
  p.onEvent(makeEvent(hubble::testing::policyDrop()));
  EventSpec verdict;
  verdict.type = EVENT_POLICY_VERDICT;
  verdict.subtype = 0;
  verdict.match_type = 2;
  p.onEvent(makeEvent(verdict));
  verdict.match_type = 4;
  p.onEvent(makeEvent(verdict));
  p.onEvent(makeEvent(verdict));
  ASSERT_TRUE(p.flush(5s));
  auto text = r.expose();
  for (const char* line : {
           "hubble_port_distribution_total{protocol=\"TCP\",port=\"80\"} 3\n",
           "hubble_port_distribution_total{protocol=\"TCP\",port=\"443\"} 1\n",
           "hubble_port_distribution_total{protocol=\"UDP\",port=\"80\"} 1\n",
           "hubble_port_distribution_total{protocol=\"TCP\",port=\"8080\"} 1\n",
           "hubble_tcp_flags_total{flag=\"SYN\",family=\"IPv4\"} 5\n",
           "hubble_tcp_flags_total{flag=\"SYN-ACK\",family=\"IPv4\"} 1\n",
           "hubble_icmp_total{family=\"IPv4\",type=\"8\"} 2\n",
           "hubble_icmp_total{family=\"IPv4\",type=\"0\"} 2\n",  // the ICMP drop too
           "hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1\n",
           "hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"ICMPv4\"} 1\n",
           "hubble_policy_verdicts_total{direction=\"ingress\",action=\"forwarded\",match=\"l3-"
           "l4\"} 1\n",
           "hubble_policy_verdicts_total{direction=\"ingress\",action=\"forwarded\",match=\"all\"} "
           "2\n",
           "hubble_flows_processed_total{type=\"Trace\",subtype=\"to-endpoint\",verdict="
           "\"FORWARDED\"} 9\n",
           "hubble_flows_processed_total{type=\"Drop\",subtype=\"\",verdict=\"DROPPED\"} 2\n",
           "hubble_flows_processed_total{type=\"PolicyVerdict\",subtype=\"\",verdict=\"FORWARDED\"}"
           " 3\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  // Nothing else: every sample line above, and no other.
  size_t samples = 0;
  for (size_t pos = 0; (pos = text.find('\n', pos)) != std::string::npos; ++pos)
    if (pos + 1 < text.size() && text[pos + 1] != '#') ++samples;
  EXPECT_EQ(samples, 15u) << text;
}

TEST(MetricsServerTest, ServesMetricsOverHttp) {
  Registry r;
  (*r.counter("served_total", "x"))->get().inc(5);
  MetricsServer s(r, "127.0.0.1:0");
  ASSERT_TRUE(s.start().ok());
  ASSERT_GT(s.port(), 0);
  httplib::Client c("127.0.0.1", s.port());
  auto res = c.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), kExpositionContentType);
  EXPECT_NE(res->body.find("served_total 5\n"), std::string::npos);
  // A port in use is an error, also when the holder is another metrics server.
  MetricsServer taken(r, "127.0.0.1:" + std::to_string(s.port()));
  auto st = taken.start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("Address already in use"), std::string::npos)
      << st.error().toString();
  s.stop();
  EXPECT_FALSE(parseListenAddress("nope").ok());
  EXPECT_FALSE(parseListenAddress(":99999").ok());
  EXPECT_EQ(parseListenAddress(":9962")->host, "0.0.0.0");
  EXPECT_EQ(parseListenAddress("[::1]:9962")->host, "::1");
}

}  // namespace
}  // namespace cilium::metrics
