// Hubble UI over the Star Wars demo's flows (datapath records as bpf_lxc writes them, through
// the real decoder, flow ring and Hubble server): the service map model, the JSON API, and the
// page in headless Chromium (Debian's package) showing the map with the xwing's dropped edge to
// the deathstar, the namespace picker and the flow table's verdict filter. Screenshots are kept
// in build/test-artifacts/hubble-ui/.
#include <time.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "agent/hubble/cli/cli.h"
#include "agent/hubble/resolver.h"
#include "agent/hubble/server.h"
#include "agent/hubble/ui/server.h"
#include "agent/hubble/ui/service_map.h"
#include "tests/agent/hubble/event_builder.h"
#include "tests/harness/eventually.h"
#include "tests/harness/temp_dir.h"

namespace cilium::hubble::ui {
namespace {

using namespace std::chrono_literals;
using hubble::testing::EventSpec;
using hubble::testing::makeEvent;

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

struct Pod {
  uint32_t id, identity;
  std::string name, ns, ip;
  std::vector<std::string> labels;
  std::string workload;  // Deployment name; "" for a bare pod
};

const Pod kXwing{1, 1001, "xwing", "default", "10.0.1.10", {"k8s:org=alliance", "k8s:class=xwing"},
                 ""};
const Pod kTiefighter{
    2, 1002, "tiefighter", "default", "10.0.1.11", {"k8s:org=empire", "k8s:class=tiefighter"}, ""};
const Pod kDeathstar{3,          1003,        "deathstar-6fb5694d48-5hmds",
                     "default",  "10.0.2.20", {"k8s:org=empire", "k8s:class=deathstar"},
                     "deathstar"};
const Pod kCoredns{4,
                   1004,
                   "coredns-5d78c9869d-x7k2p",
                   "kube-system",
                   "10.0.1.53",
                   {"k8s:k8s-app=kube-dns"},
                   "coredns"};

// A connection attempt from `from` to `to`: the SYN as bpf_lxc reports it at the destination
// (delivered, or dropped by policy), and for delivered TCP the SYN-ACK back as a reply.
std::vector<cilium_event> connection(const Pod& from, const Pod& to, uint8_t proto, uint16_t port,
                                     bool dropped, uint16_t sport) {
  EventSpec s;
  if (dropped) s = hubble::testing::policyDrop();
  s.src = from.ip;
  s.dst = to.ip;
  s.src_identity = from.identity;
  s.dst_identity = to.identity;
  s.source = static_cast<uint16_t>(to.id);
  s.dst_id = static_cast<uint16_t>(to.id);
  s.proto = proto;
  s.tcp_flags = proto == 6 ? 0x02 : 0;
  s.sport = sport;
  s.dport = port;
  s.ktime_ns = monotonicNs();
  std::vector<cilium_event> out = {makeEvent(s)};
  if (!dropped && proto == 6) {
    EventSpec r = s;
    std::swap(r.src, r.dst);
    std::swap(r.src_identity, r.dst_identity);
    std::swap(r.sport, r.dport);
    r.subtype = TRACE_TO_LXC;
    r.source = static_cast<uint16_t>(from.id);
    r.dst_id = static_cast<uint16_t>(from.id);
    r.tcp_flags = 0x12;
    r.ct_state = CT_REPLY;
    r.ktime_ns = s.ktime_ns + 1000;
    out.push_back(makeEvent(r));
  }
  return out;
}

// The demo's traffic: tiefighter lands, xwing is denied (three tries), both ask DNS.
std::vector<cilium_event> starWarsTraffic() {
  std::vector<cilium_event> all;
  auto add = [&](std::vector<cilium_event> evs) { all.insert(all.end(), evs.begin(), evs.end()); };
  add(connection(kTiefighter, kCoredns, 17, 53, false, 41000));
  add(connection(kTiefighter, kDeathstar, 6, 80, false, 42000));
  add(connection(kXwing, kCoredns, 17, 53, false, 43000));
  for (uint16_t i = 0; i < 3; ++i) add(connection(kXwing, kDeathstar, 6, 80, true, 44000 + i));
  return all;
}

class UiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const Pod* p : {&kXwing, &kTiefighter, &kDeathstar, &kCoredns}) {
      EndpointInfo info;
      info.id = p->id;
      info.identity = p->identity;
      info.pod_name = p->name;
      info.pod_namespace = p->ns;
      info.labels = p->labels;
      if (!p->workload.empty()) info.workloads.push_back({p->workload, "Deployment"});
      res_.addEndpoint(info, {*IpAddr::parse(p->ip)});
    }
    PipelineOptions po;
    po.node_name = "kind-kind/node-1";
    pipeline_ = std::make_unique<FlowPipeline>(po, &res_, &res_);
    ASSERT_TRUE(pipeline_->start().ok());
    ServerOptions so;
    so.unix_socket = dir_.file("hubble.sock");
    so.version = "test";
    server_ = std::make_unique<HubbleServer>(*pipeline_, so);
    auto st = server_->start();
    ASSERT_TRUE(st.ok()) << st.error().toString();
    for (const auto& ev : starWarsTraffic()) pipeline_->onEvent(ev);
    ASSERT_TRUE(pipeline_->flush(5s));
  }
  void TearDown() override {
    server_.reset();
    pipeline_.reset();
  }
  std::string server() const { return "unix://" + dir_.file("hubble.sock"); }

  cilium::testing::TempDir dir_;
  StaticResolver res_;
  std::unique_ptr<FlowPipeline> pipeline_;
  std::unique_ptr<HubbleServer> server_;
};

const nlohmann::json* findEdge(const nlohmann::json& map, const std::string& from,
                               const std::string& to) {
  for (const auto& e : map["edges"])
    if (e["from"] == from && e["to"] == to) return &e;
  return nullptr;
}

// Workload names from workloads, then name labels, then the pod; replies draw no edge.
TEST(ServiceMapTest, WorkloadsAndEdges) {
  flow::Flow f;
  f.mutable_ip()->set_source("10.0.1.10");
  f.mutable_ip()->set_destination("10.0.2.20");
  f.mutable_l4()->mutable_tcp()->set_destination_port(80);
  f.mutable_source()->set_namespace_("default");
  f.mutable_source()->set_pod_name("xwing");
  f.mutable_source()->add_labels("k8s:class=xwing");
  f.mutable_destination()->set_namespace_("default");
  f.mutable_destination()->set_pod_name("deathstar-6fb5694d48-5hmds");
  auto* w = f.mutable_destination()->add_workloads();
  w->set_name("deathstar");
  w->set_kind("Deployment");
  f.set_verdict(flow::DROPPED);
  ServiceMap m;
  m.add(f);
  m.add(f);
  f.set_verdict(flow::FORWARDED);
  m.add(f);
  flow::Flow reply = f;
  reply.mutable_is_reply()->set_value(true);
  std::swap(*reply.mutable_source(), *reply.mutable_destination());
  m.add(reply);
  flow::Flow world;
  world.mutable_ip()->set_source("1.1.1.1");
  world.mutable_ip()->set_destination("10.0.2.20");
  world.mutable_source()->add_labels("reserved:world");
  *world.mutable_destination() = f.destination();
  world.mutable_l4()->mutable_udp()->set_destination_port(53);
  m.add(world);
  auto j = m.toJson();
  ASSERT_EQ(j["nodes"].size(), 3u) << j.dump();
  EXPECT_EQ(j["nodes"][0]["id"], "default/deathstar");
  EXPECT_EQ(j["nodes"][1]["id"], "default/xwing");
  EXPECT_EQ(j["nodes"][2]["id"], "reserved:world");
  EXPECT_EQ(j["nodes"][2]["kind"], "reserved");
  ASSERT_EQ(j["edges"].size(), 2u) << j.dump();
  const auto* e = findEdge(j, "default/xwing", "default/deathstar");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ((*e)["protocol"], "TCP");
  EXPECT_EQ((*e)["port"], 80);
  EXPECT_EQ((*e)["dropped"], 2);
  EXPECT_EQ((*e)["forwarded"], 1);
  EXPECT_EQ((*e)["verdict"], "mixed");
  EXPECT_EQ((*findEdge(j, "reserved:world", "default/deathstar"))["protocol"], "UDP");
}

TEST_F(UiTest, ApiAnswersPerNamespace) {
  auto ch = cli::dial(server(), {});
  ASSERT_TRUE(ch.ok());
  UiServer ui(*ch, {"127.0.0.1:0", 2000, 5s});
  auto ns = ui.namespaces();
  ASSERT_TRUE(ns.ok()) << ns.error().toString();
  EXPECT_EQ((*ns)["namespaces"], nlohmann::json({"default", "kube-system"}));
  auto d = ui.flows("default");
  ASSERT_TRUE(d.ok()) << d.error().toString();
  const auto& map = (*d)["map"];
  const auto* xwing = findEdge(map, "default/xwing", "default/deathstar");
  ASSERT_NE(xwing, nullptr) << map.dump();
  EXPECT_EQ((*xwing)["verdict"], "dropped");
  EXPECT_EQ((*xwing)["dropped"], 3);
  const auto* tie = findEdge(map, "default/tiefighter", "default/deathstar");
  ASSERT_NE(tie, nullptr) << map.dump();
  EXPECT_EQ((*tie)["verdict"], "forwarded");
  EXPECT_NE(findEdge(map, "default/xwing", "kube-system/coredns"), nullptr);
  // tiefighter: DNS, SYN, SYN-ACK; xwing: DNS, 3 dropped SYNs.
  EXPECT_EQ((*d)["flows"].size(), 7u);
  EXPECT_EQ((*d)["flows"][0]["verdict"], "DROPPED");  // newest first
  EXPECT_EQ((*d)["flows"][0]["source"], "default/xwing:44002");
  EXPECT_EQ((*d)["flows"][0]["type"], "Policy denied");
  auto k = ui.flows("kube-system");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(findEdge((*k)["map"], "default/tiefighter", "default/deathstar"), nullptr);
  EXPECT_NE(findEdge((*k)["map"], "default/tiefighter", "kube-system/coredns"), nullptr);
  EXPECT_EQ((*k)["flows"].size(), 2u);
  // Anything but a namespace name is refused, not turned into a filter.
  EXPECT_EQ(ui.flows("default/\"x").error().code(), ErrorCode::kInvalidArgument);
  // A server that is gone is an error, not an empty map.
  server_.reset();
  EXPECT_FALSE(ui.flows("default").ok());
}

std::string chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

// The page in headless Chromium: what it shows after its scripts ran and fetched the API.
class ChromiumTest : public UiTest {
 protected:
  void SetUp() override {
    UiTest::SetUp();
    if (chromium().empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium)";
    SpawnOptions so;
    so.stderr_path = dir_.file("ui.err");
    auto proc = cilium::spawn(
        {CILIUM_UI_BINARY, "--server", server(), "--listen-address", "127.0.0.1:0"}, so);
    ASSERT_TRUE(proc.ok()) << proc.error().toString();
    ui_ = std::make_unique<Process>(std::move(*proc));
    ASSERT_TRUE(cilium::testing::eventually([&] {
      std::ifstream in(dir_.file("ui.err"));
      std::stringstream ss;
      ss << in.rdbuf();
      std::smatch m;
      std::string text = ss.str();
      if (!std::regex_search(text, m, std::regex("hubble-ui listening address=\\S+ port=(\\d+)")))
        return false;
      url_ = "http://127.0.0.1:" + m[1].str() + "/";
      return true;
    }));
    std::filesystem::create_directories(CILIUM_UI_ARTIFACT_DIR);
  }
  void TearDown() override {
    if (ui_) {
      EXPECT_EQ(ui_->stop(10s), 0);
    }
    UiTest::TearDown();
  }

  // Chromium with `extra` (--dump-dom, --screenshot=...) on the page at `query`; virtual time
  // lets the page's fetches and first render finish before the DOM is taken.
  std::string browse(const std::string& query, std::vector<std::string> extra) {
    std::vector<std::string> argv = {chromium(),
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--no-first-run",
                                     "--user-data-dir=" + dir_.file("chromium"),
                                     "--window-size=1400,1000",
                                     "--virtual-time-budget=10000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url_ + query);
    SpawnOptions so;
    so.extra_env = {"HOME=" + dir_.path()};
    auto r = cilium::run(argv, so, 120s);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0) << r->err;
    return r->out;
  }

  static int count(const std::string& s, const std::string& needle) {
    int n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
    return n;
  }

  std::unique_ptr<Process> ui_;
  std::string url_;
};

TEST_F(ChromiumTest, StarWarsServiceMapWithTheXwingsDroppedEdge) {
  auto dom = browse("?namespace=default", {"--dump-dom"});
  ASSERT_NE(dom.find("data-loaded=\"true\""), std::string::npos) << dom;
  // The namespace picker lists both namespaces, default picked.
  EXPECT_NE(dom.find("<option value=\"default\" selected=\"\">default</option>"), std::string::npos)
      << dom;
  EXPECT_NE(dom.find("<option value=\"kube-system\">kube-system</option>"), std::string::npos);
  // Workloads as boxes, grouped by namespace.
  for (const char* id :
       {"default/xwing", "default/tiefighter", "default/deathstar", "kube-system/coredns"})
    EXPECT_NE(dom.find(std::string("data-id=\"") + id + "\""), std::string::npos) << id;
  EXPECT_NE(dom.find("<g class=\"ns-group\" data-namespace=\"default\">"), std::string::npos);
  EXPECT_NE(dom.find("<g class=\"ns-group\" data-namespace=\"kube-system\">"), std::string::npos);
  // xwing -> deathstar: one red (dropped) edge labelled with protocol, port and verdict;
  // tiefighter's is forwarded.
  const std::string xwing_edge =
      "<g class=\"edge dropped\" data-from=\"default/xwing\" data-to=\"default/deathstar\" "
      "data-protocol=\"TCP\" data-port=\"80\" data-verdict=\"dropped\">";
  auto at = dom.find(xwing_edge);
  ASSERT_NE(at, std::string::npos) << dom;
  EXPECT_NE(dom.find("TCP/80 DROPPED", at), std::string::npos);
  EXPECT_NE(dom.find("<g class=\"edge forwarded\" data-from=\"default/tiefighter\" "
                     "data-to=\"default/deathstar\" data-protocol=\"TCP\" data-port=\"80\""),
            std::string::npos);
  EXPECT_NE(dom.find("<g class=\"edge forwarded\" data-from=\"default/xwing\" "
                     "data-to=\"kube-system/coredns\" data-protocol=\"UDP\" data-port=\"53\""),
            std::string::npos);
  EXPECT_EQ(count(dom, "class=\"edge dropped\""), 1);
  // The flow table: every flow of the namespace, the xwing's drops among them.
  EXPECT_EQ(count(dom, "<tr class=\"flow "), 7);
  EXPECT_EQ(count(dom, "<tr class=\"flow verdict-DROPPED\">"), 3);
  EXPECT_NE(dom.find("<td class=\"source\">default/xwing:44000</td><td "
                     "class=\"destination\">default/deathstar-6fb5694d48-5hmds:80</td><td "
                     "class=\"type\">Policy denied</td><td class=\"verdict\">DROPPED</td>"),
            std::string::npos)
      << dom;
  EXPECT_NE(dom.find("(7 of 7)"), std::string::npos);

  const std::string png = std::string(CILIUM_UI_ARTIFACT_DIR) + "/star-wars-default.png";
  std::filesystem::remove(png);
  browse("?namespace=default", {"--screenshot=" + png});
  ASSERT_TRUE(std::filesystem::exists(png));
  EXPECT_GT(std::filesystem::file_size(png), 10000u);
}

TEST_F(ChromiumTest, VerdictFilterAndNamespacePicker) {
  auto dropped = browse("?namespace=default&verdict=DROPPED", {"--dump-dom"});
  ASSERT_NE(dropped.find("data-loaded=\"true\""), std::string::npos) << dropped;
  EXPECT_EQ(count(dropped, "<tr class=\"flow "), 3);
  EXPECT_EQ(count(dropped, "<tr class=\"flow verdict-DROPPED\">"), 3);
  EXPECT_NE(dropped.find("(3 of 7)"), std::string::npos);
  auto search = browse("?namespace=default&q=tiefighter", {"--dump-dom"});
  EXPECT_EQ(count(search, "<tr class=\"flow "), 3) << search;  // to DNS, to deathstar, its reply

  auto kube = browse("?namespace=kube-system", {"--dump-dom"});
  ASSERT_NE(kube.find("data-loaded=\"true\""), std::string::npos) << kube;
  EXPECT_NE(kube.find("<option value=\"kube-system\" selected=\"\">"), std::string::npos);
  EXPECT_NE(kube.find("data-id=\"kube-system/coredns\""), std::string::npos);
  EXPECT_EQ(kube.find("data-id=\"default/deathstar\""), std::string::npos);
  EXPECT_EQ(count(kube, "<tr class=\"flow "), 2);
  const std::string png = std::string(CILIUM_UI_ARTIFACT_DIR) + "/star-wars-kube-system.png";
  browse("?namespace=kube-system", {"--screenshot=" + png});
  EXPECT_TRUE(std::filesystem::exists(png));
}

// A node that can speak the DevTools protocol (its WebSocket client: Node 20.10 or later).
bool nodeWithWebSocket() {
  auto r = cilium::run({"node", "--experimental-websocket", "-e",
                        "process.exit(typeof WebSocket === 'function' ? 0 : 1)"});
  return r.ok() && r->exit_code == 0;
}

// As a user works the page: opened without a namespace (default is picked), then kube-system
// chosen in the picker, then default again with the verdict filter on DROPPED; each step read
// back from the live DOM over the DevTools protocol (drive_page.js).
TEST_F(ChromiumTest, PickerAndFilterAsAUserWorksThem) {
  if (!nodeWithWebSocket()) GTEST_SKIP() << "needs node >= 20.10 (WebSocket) to drive Chromium";
  const std::string profile = dir_.file("cdp-profile");
  SpawnOptions so;
  so.extra_env = {"HOME=" + dir_.path()};
  auto browser =
      cilium::spawn({chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1",
                     "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"},
                    so);
  ASSERT_TRUE(browser.ok()) << browser.error().toString();
  std::string port;
  ASSERT_TRUE(cilium::testing::eventually(
      [&] {
        std::ifstream in(profile + "/DevToolsActivePort");
        return static_cast<bool>(std::getline(in, port)) && !port.empty();
      },
      30s));
  auto r = cilium::run({"node", "--experimental-websocket", CILIUM_UI_DRIVER, port, url_}, {}, 90s);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->err << r->out;
  std::vector<nlohmann::json> steps;
  std::istringstream lines(r->out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line.front() == '{') steps.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(steps.size(), 3u) << r->out;
  const auto& opened = steps[0];
  EXPECT_EQ(opened["namespace"], "default");
  EXPECT_EQ(opened["options"], nlohmann::json({"default", "kube-system"}));
  EXPECT_EQ(opened["dropped_edges"], nlohmann::json({"default/xwing>default/deathstar:TCP/80"}));
  EXPECT_EQ(opened["rows"], 7);
  EXPECT_EQ(opened["dropped_rows"], 3);
  const auto& kube = steps[1];
  EXPECT_EQ(kube["namespace"], "kube-system");
  EXPECT_EQ(kube["nodes"],
            nlohmann::json({"default/tiefighter", "default/xwing", "kube-system/coredns"}))
      << kube.dump();
  EXPECT_EQ(kube["dropped_edges"], nlohmann::json::array());
  EXPECT_EQ(kube["rows"], 2);
  EXPECT_EQ(kube["url"], "?namespace=kube-system");
  const auto& dropped = steps[2];
  EXPECT_EQ(dropped["namespace"], "default");
  EXPECT_EQ(dropped["rows"], 3);
  EXPECT_EQ(dropped["dropped_rows"], 3);
  EXPECT_EQ(dropped["url"], "?namespace=default&verdict=DROPPED");
  (void)browser->stop(10s);  // Chromium ends on SIGTERM with a code of its own
}

// L7 on top of the Star Wars traffic, as the proxy reports it (access records through the
// pipeline's L7 decoder): the tiefighter's POST to land (forwarded, answered 200 in 3 ms) and
// its PUT to the exhaust port (denied, 403); and a DNS query of the tiefighter, as Hubble's
// DNS proxy makes it (a Layer7 DNS flow written to the ring).
void addL7(FlowPipeline& p) {
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto record = [&](proxy::AccessRecord::Type type, const std::string& method,
                    const std::string& url, uint32_t code, proxy::AccessRecord::Verdict v,
                    int64_t at) {
    proxy::AccessRecord r;
    r.type = type;
    r.verdict = v;
    r.ingress = true;
    r.time_ns = at;
    r.endpoint_id = static_cast<uint16_t>(kDeathstar.id);
    r.src_ip = kTiefighter.ip;
    r.dst_ip = kDeathstar.ip;
    r.src_port = 42010;
    r.dst_port = 80;
    r.src_identity = kTiefighter.identity;
    r.dst_identity = kDeathstar.identity;
    r.proxy_port = 15001;
    r.method = method;
    r.url = url;
    r.protocol = "HTTP/1.1";
    r.code = code;
    if (type == proxy::AccessRecord::Type::kResponse) r.latency_ns = 3'000'000;
    p.onAccessRecord(r);
  };
  using T = proxy::AccessRecord::Type;
  using V = proxy::AccessRecord::Verdict;
  const std::string land = "http://deathstar.default.svc.cluster.local/v1/request-landing";
  record(T::kRequest, "POST", land, 0, V::kForwarded, now);
  record(T::kResponse, "POST", land, 200, V::kForwarded, now + 3'000'000);
  record(T::kRequest, "PUT", "http://deathstar.default.svc.cluster.local/v1/exhaust-port", 403,
         V::kDenied, now + 4'000'000);
  ASSERT_TRUE(p.flush(5s));

  auto dns = std::make_shared<observer::GetFlowsResponse>();
  auto* f = dns->mutable_flow();
  f->mutable_time()->set_seconds((now + 5'000'000) / 1'000'000'000);
  f->mutable_time()->set_nanos(static_cast<int32_t>((now + 5'000'000) % 1'000'000'000));
  f->set_verdict(flow::FORWARDED);
  f->set_type(flow::L7);
  f->set_node_name("kind-kind/node-1");
  f->mutable_event_type()->set_type(129);
  f->mutable_ip()->set_source(kTiefighter.ip);
  f->mutable_ip()->set_destination(kCoredns.ip);
  f->mutable_ip()->set_ipversion(flow::IPv4);
  f->mutable_l4()->mutable_udp()->set_source_port(41001);
  f->mutable_l4()->mutable_udp()->set_destination_port(53);
  f->mutable_source()->set_namespace_("default");
  f->mutable_source()->set_pod_name(kTiefighter.name);
  f->mutable_source()->set_identity(kTiefighter.identity);
  f->mutable_destination()->set_namespace_("kube-system");
  f->mutable_destination()->set_pod_name(kCoredns.name);
  f->mutable_destination()->set_identity(kCoredns.identity);
  f->mutable_destination()->add_labels("k8s:k8s-app=kube-dns");
  auto* w = f->mutable_destination()->add_workloads();
  w->set_name("coredns");
  w->set_kind("Deployment");
  f->mutable_l7()->set_type(flow::REQUEST);
  f->mutable_l7()->mutable_dns()->set_query("deathstar.default.svc.cluster.local.");
  f->mutable_l7()->mutable_dns()->add_qtypes("A");
  f->set_summary("DNS Query deathstar.default.svc.cluster.local. A");
  *dns->mutable_time() = f->time();
  dns->set_node_name(f->node_name());
  p.ring().write(std::move(dns));
}

// The L7 panel in the API: an L7 flow's row carries its HTTP (or DNS) record.
TEST_F(UiTest, FlowRowsCarryTheirL7Records) {
  addL7(*pipeline_);
  auto ch = cli::dial(server(), {});
  ASSERT_TRUE(ch.ok());
  UiServer ui(*ch, {"127.0.0.1:0", 2000, 5s});
  auto d = ui.flows("default");
  ASSERT_TRUE(d.ok()) << d.error().toString();
  std::vector<nlohmann::json> l7;
  for (const auto& f : (*d)["flows"])
    if (f.contains("l7")) l7.push_back(f["l7"]);
  ASSERT_EQ(l7.size(), 4u) << (*d)["flows"].dump();
  // Newest first: DNS, the denied PUT, the response, the POST.
  EXPECT_EQ(l7[0]["dns"]["query"], "deathstar.default.svc.cluster.local.");
  EXPECT_EQ(l7[1]["http"]["method"], "PUT");
  EXPECT_EQ(l7[1]["http"]["code"], 403);
  EXPECT_EQ(l7[2]["type"], "RESPONSE");
  EXPECT_EQ(l7[2]["http"]["code"], 200);
  EXPECT_EQ(l7[2]["latency_ns"], 3'000'000);
  EXPECT_EQ(l7[3]["type"], "REQUEST");
  EXPECT_EQ(l7[3]["http"]["url"], "http://deathstar.default.svc.cluster.local/v1/request-landing");
  // Flows without L7 carry none.
  size_t plain = 0;
  for (const auto& f : (*d)["flows"]) plain += f.contains("l7") ? 0 : 1;
  EXPECT_EQ(plain, 7u);
}

// As a user works the page: a click on an HTTP flow opens the details panel with its method,
// URL, path (and on the response the status and latency), a DNS flow shows its query, a click
// on the tiefighter's edge lists the L7 records on that connection (and keeps them across the
// page's refresh); close hides the panel. Read back over the DevTools protocol; screenshot kept.
TEST_F(ChromiumTest, L7DetailsPanelForAFlowAndAnEdge) {
  if (!nodeWithWebSocket()) GTEST_SKIP() << "needs node >= 20.10 (WebSocket) to drive Chromium";
  addL7(*pipeline_);
  const std::string profile = dir_.file("cdp-profile");
  SpawnOptions so;
  so.extra_env = {"HOME=" + dir_.path()};
  auto browser =
      cilium::spawn({chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1",
                     "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"},
                    so);
  ASSERT_TRUE(browser.ok()) << browser.error().toString();
  std::string port;
  ASSERT_TRUE(cilium::testing::eventually(
      [&] {
        std::ifstream in(profile + "/DevToolsActivePort");
        return static_cast<bool>(std::getline(in, port)) && !port.empty();
      },
      30s));
  const std::string png = std::string(CILIUM_UI_ARTIFACT_DIR) + "/star-wars-l7-details.png";
  std::filesystem::remove(png);
  auto r = cilium::run({"node", "--experimental-websocket", CILIUM_UI_DRIVER, port,
                        url_ + "?namespace=default", "l7", png},
                       {}, 90s);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->err << r->out;
  std::map<std::string, nlohmann::json> step;
  std::istringstream lines(r->out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line.front() == '{') {
      auto j = nlohmann::json::parse(line);
      step[j["step"]] = j;
    }
  ASSERT_EQ(step.size(), 5u) << r->out;
  const auto& req = step["request"];
  EXPECT_EQ(req["hidden"], false);
  EXPECT_EQ(req["kind"], "flow");
  EXPECT_EQ(req["l7_heading"], "HTTP request");
  EXPECT_EQ(req["method"], "POST");
  EXPECT_EQ(req["url"], "http://deathstar.default.svc.cluster.local/v1/request-landing");
  EXPECT_EQ(req["path"], "/v1/request-landing");
  EXPECT_EQ(req["protocol"], "HTTP/1.1");
  EXPECT_EQ(req["status"], nullptr);  // a request has none yet
  EXPECT_EQ(req["source"], "default/tiefighter:42010");
  const auto& resp = step["response"];
  EXPECT_EQ(resp["l7_heading"], "HTTP response");
  EXPECT_EQ(resp["status"], "200");
  EXPECT_EQ(resp["latency"], "3.00 ms");
  EXPECT_EQ(resp["method"], "POST");
  const auto& dns = step["dns"];
  EXPECT_EQ(dns["l7_heading"], "DNS query");
  EXPECT_EQ(dns["dns_query"], "deathstar.default.svc.cluster.local.");
  EXPECT_EQ(dns["dns_types"], "A");
  EXPECT_EQ(dns["destination"], "kube-system/coredns-5d78c9869d-x7k2p:53");
  const auto& edge = step["edge"];
  EXPECT_EQ(edge["kind"], "edge");
  EXPECT_EQ(edge["title"], "Connection details");
  EXPECT_EQ(edge["source"], "tiefighter");
  EXPECT_EQ(edge["destination"], "deathstar");
  EXPECT_EQ(edge["records"], nlohmann::json({"HTTP request PUT /v1/exhaust-port 403 DROPPED",
                                             "HTTP response POST /v1/request-landing 200 FORWARDED",
                                             "HTTP request POST /v1/request-landing  FORWARDED"}))
      << edge.dump();
  EXPECT_EQ(step["closed"]["hidden"], true);
  EXPECT_TRUE(std::filesystem::exists(png));
  (void)browser->stop(10s);
}

}  // namespace
}  // namespace cilium::hubble::ui
