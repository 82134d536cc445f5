// The prober against fake probes: which addresses are probed from where, reachability and
// its count, the report's JSON round trip, the text forms, the metric samples and the
// interval syntax.
#include "agent/health/prober.h"

#include <atomic>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "agent/health/config.h"
#include "agent/node/node.h"
#include "tests/harness/eventually.h"

namespace cilium::health {
namespace {

using namespace std::chrono_literals;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

// Answers every probe with a fixed latency unless the address is in `down`; records what was
// probed from where.
class FakeProbes final : public Probes {
 public:
  Result<std::chrono::nanoseconds> icmp(Source from, const IpAddr& a,
                                        std::chrono::milliseconds) override {
    return answer("icmp", from, a);
  }
  Result<std::chrono::nanoseconds> http(Source from, const IpAddr& a, uint16_t port,
                                        std::chrono::milliseconds) override {
    EXPECT_EQ(port, 4240);
    return answer("http", from, a);
  }
  void setDown(const std::string& a, bool down) {
    std::lock_guard lock(mu);
    if (down)
      this->down.insert(a);
    else
      this->down.erase(a);
  }
  std::map<std::string, Source> sources() {
    std::lock_guard lock(mu);
    return seen;
  }
  std::atomic<int> calls{0};

 private:
  Result<std::chrono::nanoseconds> answer(const std::string& proto, Source from, const IpAddr& a) {
    calls++;
    std::lock_guard lock(mu);
    seen[proto + " " + a.toString()] = from;
    if (down.count(a.toString()) != 0)
      return Error(ErrorCode::kDeadlineExceeded, "no reply from " + a.toString());
    return std::chrono::nanoseconds(proto == "icmp" ? 150'000 : 420'000);
  }
  std::mutex mu;
  std::set<std::string> down;
  std::map<std::string, Source> seen;
};

std::vector<Target> threeNodes() {
  return {{"node-1", true, ip("172.31.240.1"), ip("10.200.0.9")},
          {"node-2", false, ip("172.31.240.2"), ip("10.201.0.9")},
          {"node-3", false, ip("172.31.240.3"), ip("10.202.0.9")}};
}

ProberOptions options(bool endpoint_ready = true) {
  ProberOptions o;
  o.local = "node-1";
  o.cluster = "default";
  o.interval = 50ms;
  o.endpoint_source_ready = [endpoint_ready] { return endpoint_ready; };
  return o;
}

TEST(ProberTest, AllReachable) {
  FakeProbes fake;
  Prober p(fake, options());
  Report r = p.probe(threeNodes());
  ASSERT_EQ(r.nodes.size(), 3u);
  EXPECT_EQ(r.reachableCount(), 3u);
  EXPECT_EQ(fake.calls.load(), 12) << "ICMP and HTTP to each node and each health endpoint";
  ASSERT_TRUE(r.nodes[1].endpoint.has_value());
  EXPECT_EQ(r.nodes[1].endpoint->ip, "10.201.0.9");
  EXPECT_EQ(r.nodes[1].endpoint->icmp.latency, 150us);
  EXPECT_EQ(r.nodes[1].host->http.latency, 420us);
  EXPECT_FALSE(r.timestamp.empty());
  EXPECT_EQ(p.last(), r);
  EXPECT_EQ(summaryText(r).substr(0, 14), "3/3 reachable ");
}

TEST(ProberTest, OtherHealthEndpointsAreProbedFromOursOwnFromTheNode) {
  FakeProbes fake;
  Prober p(fake, options(true));
  p.probe(threeNodes());
  auto seen = fake.sources();
  EXPECT_EQ(seen["icmp 10.201.0.9"], Source::kHealthEndpoint);
  EXPECT_EQ(seen["http 10.202.0.9"], Source::kHealthEndpoint);
  EXPECT_EQ(seen["icmp 10.200.0.9"], Source::kHost) << "our own endpoint: from the node";
  EXPECT_EQ(seen["http 172.31.240.2"], Source::kHost);

  FakeProbes fake2;
  Prober p2(fake2, options(false));
  p2.probe(threeNodes());
  EXPECT_EQ(fake2.sources()["icmp 10.201.0.9"], Source::kHost)
      << "without a health endpoint of our own, everything leaves from the node";
}

TEST(ProberTest, ANodeWithAFailedProbeIsUnreachableAndRecovers) {
  FakeProbes fake;
  Prober p(fake, options());
  fake.setDown("10.202.0.9", true);
  Report r = p.probe(threeNodes());
  EXPECT_EQ(r.reachableCount(), 2u);
  EXPECT_FALSE(r.nodes[2].reachable());
  EXPECT_TRUE(r.nodes[2].host->ok()) << "its node address still answers";
  EXPECT_EQ(r.nodes[2].endpoint->icmp.status, "no reply from 10.202.0.9");
  EXPECT_EQ(summaryText(r).substr(0, 13), "2/3 reachable");
  std::string text = formatStatus(r, false);
  EXPECT_NE(text.find("ICMP to stack:   failed (no reply from 10.202.0.9)"), std::string::npos)
      << text;

  fake.setDown("10.202.0.9", false);
  EXPECT_EQ(p.probe(threeNodes()).reachableCount(), 3u);
}

TEST(ProberTest, NodeWithoutHealthAddressIsJudgedOnItsHost) {
  FakeProbes fake;
  Prober p(fake, options());
  Report r = p.probe({{"node-1", true, ip("172.31.240.1"), std::nullopt}});
  ASSERT_EQ(r.nodes.size(), 1u);
  EXPECT_FALSE(r.nodes[0].endpoint.has_value());
  EXPECT_TRUE(r.nodes[0].reachable());
  NodeHealth none{"x", false, std::nullopt, std::nullopt};
  EXPECT_FALSE(none.reachable()) << "nothing probed is not reachable";
}

TEST(ProberTest, RoundsRunEveryIntervalAndStop) {
  FakeProbes fake;
  Prober p(fake, options());
  std::atomic<int> rounds{0};
  p.setListener([&](const Report&) { rounds++; });
  std::atomic<int> asked{0};
  p.start([&] {
    asked++;
    return threeNodes();
  });
  EXPECT_TRUE(testing::eventually([&] { return rounds.load() >= 3; }, 5s));
  p.stop();
  int after = rounds.load();
  EXPECT_EQ(asked.load(), after) << "the targets are asked again at each round";
  std::this_thread::sleep_for(150ms);  // three intervals: nothing may run after stop()
  EXPECT_EQ(rounds.load(), after);
}

TEST(ProberTest, JsonRoundTripInCiliumsShape) {
  FakeProbes fake;
  Prober p(fake, options());
  fake.setDown("172.31.240.3", true);
  Report r = p.probe(threeNodes());
  nlohmann::json j = toJson(r);
  EXPECT_EQ(j["local"]["name"], "node-1");
  EXPECT_EQ(j["nodes"][1]["host"]["primary-address"]["ip"], "172.31.240.2");
  EXPECT_EQ(j["nodes"][1]["health-endpoint"]["primary-address"]["icmp"]["latency"], 150000);
  EXPECT_EQ(j["nodes"][1]["health-endpoint"]["primary-address"]["http"]["status"], "");
  EXPECT_EQ(j["probe-interval"], "50ms");
  auto back = reportFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().toString();
  EXPECT_EQ(*back, r);

  for (const char* bad : {R"([])", R"({"nodes": {}})", R"({"nodes": [{"name": 3}]})",
                          R"({"nodes": [{"name": "a", "host": {"primary-address": {}}}]})",
                          R"({"nodes": [{"name": "a", "host": {"primary-address":
                               {"ip": "1.2.3.4", "icmp": {"latency": "x"}}}}]})",
                          R"({"probe-interval": "soon"})"}) {
    auto r2 = reportFromJson(nlohmann::json::parse(bad));
    ASSERT_FALSE(r2.ok()) << bad;
    EXPECT_EQ(r2.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(ProberTest, MetricSamplesWithCiliumsLabels) {
  FakeProbes fake;
  Prober p(fake, options());
  fake.setDown("10.202.0.9", true);
  Report r = p.probe(threeNodes());
  auto status = connectivityStatus(r);
  ASSERT_EQ(status.size(), 6u) << "node and endpoint of each node";
  std::map<std::vector<std::string>, double> by;
  for (const auto& s : status) {
    ASSERT_EQ(s.labels.size(), kStatusLabels.size());
    by[s.labels] = s.value;
  }
  EXPECT_EQ((by[{"default", "node-1", "default", "node-1", "local_node", "endpoint"}]), 1.0);
  EXPECT_EQ((by[{"default", "node-1", "default", "node-3", "remote_intra_cluster", "node"}]), 1.0);
  EXPECT_EQ((by[{"default", "node-1", "default", "node-3", "remote_intra_cluster", "endpoint"}]),
            0.0);
  auto latency = connectivityLatency(r);
  EXPECT_EQ(latency.size(), 10u) << "two protocols per path, none for the failed endpoint";
  for (const auto& s : latency) {
    ASSERT_EQ(s.labels.size(), kLatencyLabels.size());
    EXPECT_EQ(s.labels[6], "primary");
    EXPECT_EQ(s.value, s.labels[7] == "icmp" ? 150e-6 : 420e-6);
  }
}

TEST(ProberTest, TargetsFromTheNodeManager) {
  node::Node a;
  a.name = "node-2";
  a.addresses = {{node::AddressType::kInternalIp, ip("172.31.240.2")}};
  a.health = {ip("10.201.0.9")};
  node::Node b;
  b.name = "node-1";
  b.addresses = {{node::AddressType::kInternalIp, ip("172.31.240.1")}};
  node::Node c;  // no address at all: left out
  c.name = "node-0";
  auto t = targetsOf({a, b, c}, "node-1");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], (Target{"node-1", true, ip("172.31.240.1"), std::nullopt}));
  EXPECT_EQ(t[1], (Target{"node-2", false, ip("172.31.240.2"), ip("10.201.0.9")}));
}

// Dual stack: each node's IPv6 address and health endpoint are probed too (from the same
// places), count for its reachability, and are its secondary addresses in Cilium's JSON, the
// text and the metrics.
TEST(ProberTest, Ipv6AddressesAreProbedAsSecondaryAddresses) {
  FakeProbes fake;
  Prober p(fake, options());
  std::vector<Target> t = threeNodes();
  for (size_t i = 0; i < t.size(); i++) {
    t[i].node_ip6 = ip(fmt::format("fd00:172:31:240::{}", i + 1).c_str());
    t[i].health_ip6 = ip(fmt::format("fd00:10:200::{}:9", i).c_str());
  }
  Report r = p.probe(t);
  EXPECT_EQ(fake.calls.load(), 24) << "ICMP and HTTP to both families of each";
  auto seen = fake.sources();
  EXPECT_EQ(seen["icmp fd00:10:200::1:9"], Source::kHealthEndpoint);
  EXPECT_EQ(seen["http fd00:10:200::9"], Source::kHost) << "our own, from the node";
  EXPECT_EQ(seen["icmp fd00:172:31:240::3"], Source::kHost);
  EXPECT_EQ(r.reachableCount(), 3u);
  ASSERT_TRUE(r.nodes[1].host6);
  EXPECT_EQ(r.nodes[1].host6->ip, "fd00:172:31:240::2");

  nlohmann::json j = toJson(r);
  EXPECT_EQ(j["nodes"][1]["host"]["primary-address"]["ip"], "172.31.240.2");
  EXPECT_EQ(j["nodes"][1]["host"]["secondary-addresses"][0]["ip"], "fd00:172:31:240::2");
  EXPECT_EQ(j["nodes"][1]["health-endpoint"]["secondary-addresses"][0]["ip"], "fd00:10:200::1:9");
  auto back = reportFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error().toString();
  EXPECT_EQ(*back, r);
  EXPECT_NE(formatStatus(r, true).find("Endpoint connectivity to fd00:10:200::2:9"),
            std::string::npos)
      << formatStatus(r, true);

  // Only the IPv6 health endpoint of node-3 fails: node-3 is unreachable, its IPv4 paths fine.
  fake.setDown("fd00:10:200::2:9", true);
  r = p.probe(t);
  EXPECT_EQ(r.reachableCount(), 2u);
  EXPECT_TRUE(r.nodes[2].endpoint->ok());
  EXPECT_FALSE(r.nodes[2].endpoint6->ok());
  std::map<std::vector<std::string>, double> by;
  for (const auto& s : connectivityStatus(r)) by[s.labels] = s.value;
  EXPECT_EQ(by.size(), 6u) << "one sample per node and type, whatever the families";
  EXPECT_EQ((by[{"default", "node-1", "default", "node-3", "remote_intra_cluster", "endpoint"}]),
            0.0);
  EXPECT_EQ((by[{"default", "node-1", "default", "node-3", "remote_intra_cluster", "node"}]), 1.0);
  size_t secondary = 0;
  for (const auto& s : connectivityLatency(r)) secondary += s.labels[6] == "secondary";
  EXPECT_EQ(secondary, 10u) << "both protocols of 6 IPv6 paths, none for the failed one";
}

TEST(ProberTest, TargetsOfADualStackNode) {
  node::Node a;
  a.name = "node-2";
  a.addresses = {{node::AddressType::kInternalIp, ip("172.31.240.2")},
                 {node::AddressType::kInternalIp, ip("fd00:172:31:240::2")}};
  a.health = {ip("10.201.0.9"), ip("fd00:10:200::1:9")};
  auto t = targetsOf({a}, "node-1");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], (Target{"node-2", false, ip("172.31.240.2"), ip("10.201.0.9"),
                          ip("fd00:172:31:240::2"), ip("fd00:10:200::1:9")}));
}

TEST(HealthConfigTest, Durations) {
  EXPECT_EQ(*parseDuration("60s"), 60s);
  EXPECT_EQ(*parseDuration("500ms"), 500ms);
  EXPECT_EQ(*parseDuration("1m30s"), 90s);
  EXPECT_EQ(*parseDuration("2h"), 2h);
  for (const char* bad : {"", "s", "10", "1x", "-1s", "1.5s", "99999999999999h"})
    EXPECT_FALSE(parseDuration(bad).ok()) << bad;
  EXPECT_EQ(durationText(90s), "1m30s");
  EXPECT_EQ(durationText(1500ms), "1s500ms");
  EXPECT_EQ(durationText(0ms), "0s");
  Config c;
  const auto& keys = configKeys().keys();
  auto it = std::find_if(keys.begin(), keys.end(),
                         [](const auto& k) { return k.name == "health-check-interval"; });
  ASSERT_NE(it, keys.end());
  EXPECT_TRUE(it->set(c, "1s").ok());
  EXPECT_EQ(c.health_check_interval, 1s);
  EXPECT_FALSE(it->set(c, "10ms").ok()) << "shorter than 100ms";
  EXPECT_EQ(it->get(c), "1s");
  EXPECT_TRUE(c.enable_health_checking) << "on by default, as in Cilium";
  EXPECT_TRUE(c.enable_endpoint_health_checking);
  EXPECT_EQ(c.cluster_health_port, 4240u);
}

}  // namespace
}  // namespace cilium::health
