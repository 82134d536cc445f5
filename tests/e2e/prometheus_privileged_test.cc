// e2e tier: the agent's and Hubble's metrics endpoints pass `promtool check metrics`, and a real
// Prometheus (Debian's) scraping them on loopback sees cilium_forward_count_total and
// hubble_flows_processed_total move with the pod traffic the test sends.
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "agent/common/subprocess.h"
#include "agent/metrics/server.h"
#include "tests/netns/hubble_fixture.h"

namespace cilium::testing {
namespace {

using namespace std::chrono_literals;

// A loopback port nobody listens on now (Prometheus needs a fixed one on its command line).
int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class PrometheusE2eTest : public HubbleNodeFixture {
 protected:
  void SetUp() override {
    HubbleNodeFixture::SetUp();
    if (HasFatalFailure()) return;
    if (::access("/usr/bin/prometheus", X_OK) != 0 || ::access("/usr/bin/promtool", X_OK) != 0)
      GTEST_FAIL() << "prometheus/promtool missing: run scripts/install-deps.sh";
    agent_http_ = std::make_unique<metrics::MetricsServer>(agent_registry_, "127.0.0.1:0");
    hubble_http_ = std::make_unique<metrics::MetricsServer>(hubble_registry_, "127.0.0.1:0");
    ASSERT_TRUE(agent_http_->start().ok());
    ASSERT_TRUE(hubble_http_->start().ok());
  }
  void TearDown() override {
    prometheus_.reset();
    agent_http_.reset();
    hubble_http_.reset();
    HubbleNodeFixture::TearDown();
  }

  std::string scrape(int port) {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/metrics");
    EXPECT_TRUE(r && r->status == 200);
    return r ? r->body : "";
  }

  // promtool check metrics: 0 = clean; lint problems and parse errors are reported on stdout.
  void promtoolCheck(const std::string& text, const std::string& name) {
    auto path = topo_->tmpDir() + "/" + name + ".txt";
    std::ofstream(path) << text;
    auto r = run({"/bin/sh", "-c", "promtool check metrics < " + path}, {}, 30s);
    ASSERT_TRUE(r.ok()) << r.error().toString();
    EXPECT_EQ(r->exit_code, 0) << name << ":\n" << r->out << r->err << "\n" << text;
  }

  void startPrometheus() {
    prom_port_ = freePort();
    auto cfg = topo_->tmpDir() + "/prometheus.yml";
    std::ofstream(cfg) << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                       << "scrape_configs:\n"
                       << "  - job_name: cilium-agent\n"
                       << "    static_configs: [{targets: ['127.0.0.1:" << agent_http_->port()
                       << "']}]\n"
                       << "  - job_name: hubble\n"
                       << "    static_configs: [{targets: ['127.0.0.1:" << hubble_http_->port()
                       << "']}]\n";
    SpawnOptions o;
    o.stdout_path = topo_->tmpDir() + "/prometheus.log";
    o.stderr_path = o.stdout_path;
    auto p = spawn({"/usr/bin/prometheus", "--config.file=" + cfg,
                    "--storage.tsdb.path=" + topo_->tmpDir() + "/prom-data",
                    "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_)},
                   o);
    ASSERT_TRUE(p.ok()) << p.error().toString();
    prometheus_ = std::make_unique<Process>(std::move(*p));
  }

  nlohmann::json promGet(const std::string& path) {
    httplib::Client c("127.0.0.1", prom_port_);
    c.set_connection_timeout(2);
    auto r = c.Get(path.c_str());
    if (!r || r->status != 200) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_discarded() ? nullptr : j;
  }

  // Waits until both targets have been scraped successfully at least once.
  bool waitTargetsUp(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto j = promGet("/api/v1/targets");
      if (j.is_object() && j["data"]["activeTargets"].is_array()) {
        int up = 0;
        for (const auto& t : j["data"]["activeTargets"])
          if (t["health"] == "up") ++up;
        if (up == 2) return true;
      }
      std::this_thread::sleep_for(250ms);  // between polls of Prometheus' API
    }
    return false;
  }

  // Sum of an instant query's vector; nullopt while Prometheus has no sample.
  std::optional<double> query(const std::string& promql) {
    auto j = promGet("/api/v1/query?query=" + httplib::detail::encode_query_param(promql));
    if (!j.is_object() || j["status"] != "success") return std::nullopt;
    const auto& res = j["data"]["result"];
    if (!res.is_array() || res.empty()) return std::nullopt;
    double sum = 0;
    for (const auto& s : res) sum += std::stod(s["value"][1].get<std::string>());
    return sum;
  }

  // Waits until `promql` reports at least `want`; the last value seen.
  double waitAtLeast(const std::string& promql, double want, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    double last = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto v = query(promql)) {
        last = *v;
        if (last >= want) break;
      }
      std::this_thread::sleep_for(250ms);
    }
    return last;
  }

  std::unique_ptr<metrics::MetricsServer> agent_http_, hubble_http_;
  std::unique_ptr<Process> prometheus_;
  int prom_port_ = 0;
};

TEST_F(PrometheusE2eTest, PromtoolAcceptsTheExposition) {
  allowedTcp();
  deniedTcp();
  ASSERT_TRUE(pipeline_->flush(5s));
  auto agent = scrape(agent_http_->port());
  auto hubble = scrape(hubble_http_->port());
  EXPECT_NE(agent.find("cilium_forward_count_total{direction=\"EGRESS\"}"), std::string::npos);
  EXPECT_NE(agent.find("cilium_drop_count_total{reason=\"Policy denied\""), std::string::npos);
  EXPECT_NE(hubble.find("hubble_flows_processed_total{"), std::string::npos);
  promtoolCheck(agent, "agent");
  promtoolCheck(hubble, "hubble");
  // A broken exposition is caught: promtool is really checking.
  auto r = run({"/bin/sh", "-c", "printf 'x{ 1\\n' | promtool check metrics"}, {}, 30s);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
}

TEST_F(PrometheusE2eTest, PrometheusSeesCountersMoveWithTraffic) {
  startPrometheus();
  ASSERT_TRUE(waitTargetsUp(60s)) << "Prometheus never scraped both targets";
  const std::string fwd = "sum(cilium_forward_count_total{direction=\"EGRESS\"})";
  const std::string flows = "sum(hubble_flows_processed_total)";
  const std::string drops = "sum(cilium_drop_count_total{reason=\"Policy denied\"})";
  double fwd0 = query(fwd).value_or(0), flows0 = query(flows).value_or(0),
         drops0 = query(drops).value_or(0);
  constexpr int kConnections = 10;
  for (int i = 0; i < kConnections; ++i) allowedTcp();
  deniedTcp();
  // Each allowed exchange sends at least 4 packets out of pods (SYN, ACK, data, reply data...).
  double fwd1 = waitAtLeast(fwd, fwd0 + 4 * kConnections, 30s);
  EXPECT_GE(fwd1, fwd0 + 4 * kConnections) << "before " << fwd0;
  double flows1 = waitAtLeast(flows, flows0 + kConnections, 30s);
  EXPECT_GE(flows1, flows0 + kConnections) << "before " << flows0;
  double drops1 = waitAtLeast(drops, drops0 + 1, 30s);
  EXPECT_GE(drops1, drops0 + 1) << "before " << drops0;
}

}  // namespace
}  // namespace cilium::testing
