// hubble CLI flags -> the GetFlowsRequest Hubble's CLI would send, and the output formats.
#include "agent/hubble/cli/cli.h"

#include <sstream>

#include <gtest/gtest.h>

#include "agent/hubble/decoder.h"
#include "agent/hubble/filter.h"
#include "agent/hubble/resolver.h"
#include "tests/agent/hubble/event_builder.h"

namespace cilium::hubble::cli {
namespace {

Args parse(std::vector<std::string> argv) {
  auto a = parseArgs(argv);
  EXPECT_TRUE(a.ok()) << a.error().toString();
  return a.ok() ? *a : Args{};
}

observer::GetFlowsRequest request(std::vector<std::string> argv) {
  auto a = parse(std::move(argv));
  auto r = buildRequest(a.observe, 2'000'000'000'000'000'000);
  EXPECT_TRUE(r.ok()) << r.error().toString();
  return r.ok() ? *r : observer::GetFlowsRequest{};
}

TEST(CliTest, Commands) {
  EXPECT_EQ(parse({"observe"}).command, "observe");
  EXPECT_EQ(parse({"status"}).command, "status");
  EXPECT_EQ(parse({"list", "nodes"}).command, "nodes");
  EXPECT_EQ(parse({}).command, "help");
  EXPECT_EQ(parse({"--server", "unix:///tmp/x.sock", "status"}).server, "unix:///tmp/x.sock");
  EXPECT_FALSE(parseArgs({"observe", "--bogus"}).ok());
  EXPECT_FALSE(parseArgs({"frobnicate"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--last"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--first", "2", "--follow"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "-o", "yaml"}).ok());
  // The wording every binary shares (agent/common/cli.h).
  EXPECT_EQ(parseArgs({"observe", "--bogus"}).error().message(), "unknown flag --bogus");
  EXPECT_EQ(parseArgs({"frobnicate"}).error().message(), "unexpected argument 'frobnicate'");
  EXPECT_EQ(parseArgs({"observe", "--last"}).error().message(), "--last: needs a value");
  // Global flags stand anywhere; help names the command asked about.
  EXPECT_EQ(parse({"status", "--server", "unix:///tmp/y.sock"}).server, "unix:///tmp/y.sock");
  auto help = parse({"observe", "--help"});
  EXPECT_EQ(help.command, "help");
  EXPECT_EQ(help.help.rfind("Usage: hubble observe", 0), 0u) << help.help;
  EXPECT_NE(help.help.find("--from-pod=NAME"), std::string::npos) << help.help;
}

TEST(CliTest, ServicesNamesVersionsAndHttp) {
  EXPECT_EQ(parse({"list", "namespaces"}).command, "namespaces");
  auto r = request({"observe", "--to-service", "default/web", "--from-fqdn", "*.example.com",
                    "--ip-version", "v6", "--http-status", "5+", "--http-method", "GET",
                    "--http-path", "/v1/.*"});
  ASSERT_EQ(r.whitelist_size(), 1);
  const auto& f = r.whitelist(0);
  ASSERT_EQ(f.destination_service_size(), 1);
  EXPECT_EQ(f.destination_service(0), "default/web");
  EXPECT_EQ(f.source_service_size(), 0);
  ASSERT_EQ(f.source_fqdn_size(), 1);
  EXPECT_EQ(f.source_fqdn(0), "*.example.com");
  ASSERT_EQ(f.ip_version_size(), 1);
  EXPECT_EQ(f.ip_version(0), flow::IPv6);
  EXPECT_EQ(f.http_status_code(0), "5+");
  EXPECT_EQ(f.http_method(0), "GET");
  EXPECT_EQ(f.http_path(0), "/v1/.*");
  // Either side: one filter per side, as --pod.
  auto e = request({"observe", "--service", "shop/db"});
  ASSERT_EQ(e.whitelist_size(), 2);
  EXPECT_EQ(e.whitelist(0).source_service(0), "shop/db");
  EXPECT_EQ(e.whitelist(1).destination_service(0), "shop/db");
  auto from = request({"observe", "--from-service", "shop/db"});
  ASSERT_EQ(from.whitelist_size(), 1);
  EXPECT_EQ(from.whitelist(0).source_service(0), "shop/db");
  EXPECT_EQ(from.whitelist(0).destination_service_size(), 0);
  auto fqdn = request({"observe", "--fqdn", "*.example.com"});
  ASSERT_EQ(fqdn.whitelist_size(), 2);
  EXPECT_EQ(fqdn.whitelist(0).source_fqdn(0), "*.example.com");
  EXPECT_EQ(fqdn.whitelist(1).destination_fqdn(0), "*.example.com");
  auto bad = buildRequest(parse({"observe", "--ip-version", "v5"}).observe, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(parse({"observe", "--print-node-name"}).observe.print.node_name);
  auto w = request({"observe", "--to-workload", "Deployment/web", "--from-workload", "client"});
  ASSERT_EQ(w.whitelist_size(), 1);
  EXPECT_EQ(w.whitelist(0).destination_workload(0).kind(), "Deployment");
  EXPECT_EQ(w.whitelist(0).destination_workload(0).name(), "web");
  EXPECT_EQ(w.whitelist(0).source_workload(0).kind(), "");
  EXPECT_EQ(w.whitelist(0).source_workload(0).name(), "client");
}

TEST(CliTest, NotMovesTheNextFilterToTheBlacklist) {
  auto r = request({"observe", "--from-pod", "default/web", "--not", "--to-port", "53", "--not",
                    "--verdict=DROPPED", "--last", "5"});
  ASSERT_EQ(r.whitelist_size(), 1);
  EXPECT_EQ(r.whitelist(0).source_pod(0), "default/web");
  EXPECT_EQ(r.whitelist(0).destination_port_size(), 0);
  EXPECT_EQ(r.whitelist(0).verdict_size(), 0);
  ASSERT_EQ(r.blacklist_size(), 1);
  EXPECT_EQ(r.blacklist(0).destination_port(0), "53");
  EXPECT_EQ(r.blacklist(0).verdict(0), flow::DROPPED);
  EXPECT_EQ(r.number(), 5u);
  // Either-side flags negated: flows with the pod on either side are left out.
  auto e = request({"observe", "--not", "--pod", "kube-system/coredns"});
  EXPECT_EQ(e.whitelist_size(), 0);
  ASSERT_EQ(e.blacklist_size(), 2);
  EXPECT_EQ(e.blacklist(0).source_pod(0), "kube-system/coredns");
  EXPECT_EQ(e.blacklist(1).destination_pod(0), "kube-system/coredns");
  // Only filter flags can be negated; bad values are refused as without --not.
  EXPECT_FALSE(parseArgs({"observe", "--not"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--not", "--follow"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--not", "--last", "3"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--not", "--bogus", "3"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--not", "--to-port"}).ok());
  auto bad = buildRequest(parse({"observe", "--not", "--verdict", "MAYBE"}).observe, 0);
  EXPECT_FALSE(bad.ok());
}

TEST(CliTest, NumericAndTimeFormats) {
  observer::GetFlowsResponse resp;
  auto* f = resp.mutable_flow();
  f->mutable_time()->set_seconds(1795381384);  // 2026-11-22T21:03:04Z
  f->mutable_time()->set_nanos(123456789);
  f->mutable_ip()->set_source("10.200.0.11");
  f->mutable_ip()->set_destination("8.8.8.8");
  f->mutable_source()->set_namespace_("default");
  f->mutable_source()->set_pod_name("client");
  f->mutable_source()->set_identity(1001);
  f->mutable_destination()->set_identity(2);  // world
  f->set_verdict(flow::FORWARDED);
  auto named = formatCompact(resp);
  EXPECT_EQ(named.rfind("Nov 22 21:03:04.123: default/client (ID:1001) -> 8.8.8.8 (world)", 0), 0u)
      << named;
  auto a = parse({"observe", "--numeric", "--time-format", "RFC3339Milli"});
  auto numeric = formatCompact(resp, a.observe.print);
  EXPECT_EQ(numeric.rfind("2026-11-22T21:03:04.123Z: 10.200.0.11 (ID:1001) -> 8.8.8.8 (ID:2)", 0),
            0u)
      << numeric;
  auto layout = [&](const std::string& name) {
    return formatCompact(resp, parse({"observe", "--time-format", name}).observe.print);
  };
  EXPECT_EQ(layout("RFC3339").rfind("2026-11-22T21:03:04Z: ", 0), 0u);
  EXPECT_EQ(layout("RFC3339Nano").rfind("2026-11-22T21:03:04.123456789Z: ", 0), 0u);
  EXPECT_EQ(layout("StampMicro").rfind("Nov 22 21:03:04.123456: ", 0), 0u);
  EXPECT_EQ(layout("Stamp").rfind("Nov 22 21:03:04: ", 0), 0u);
  EXPECT_EQ(layout("RFC1123Z").rfind("Sun, 22 Nov 2026 21:03:04 +0000: ", 0), 0u);
  EXPECT_FALSE(parseArgs({"observe", "--time-format", "Kitchen"}).ok());
  EXPECT_FALSE(parseArgs({"observe", "--not", "--numeric"}).ok());
}

TEST(CliTest, PrintNodeName) {
  observer::GetFlowsResponse resp;
  auto* f = resp.mutable_flow();
  f->set_node_name("default/node-1");
  f->mutable_ip()->set_source("10.0.0.1");
  f->mutable_ip()->set_destination("10.0.0.2");
  f->set_verdict(flow::FORWARDED);
  auto plain = formatCompact(resp);
  PrintOptions with_node;
  with_node.node_name = true;
  auto named = formatCompact(resp, with_node);
  EXPECT_EQ(plain.find("[default/node-1]"), std::string::npos) << plain;
  EXPECT_NE(named.find(" [default/node-1]: 10.0.0.1"), std::string::npos) << named;
}

TEST(CliTest, DefaultsToTheLast20) {
  auto r = request({"observe"});
  EXPECT_EQ(r.number(), 20u);
  EXPECT_FALSE(r.follow());
  EXPECT_EQ(r.whitelist_size(), 0);
  auto f = request({"observe", "--follow"});
  EXPECT_EQ(f.number(), 0u);
  EXPECT_TRUE(f.follow());
  EXPECT_EQ(request({"observe", "--last", "5"}).number(), 5u);
  auto first = request({"observe", "--first", "3"});
  EXPECT_TRUE(first.first());
  EXPECT_EQ(first.number(), 3u);
  EXPECT_EQ(request({"observe", "--all"}).number(), 0u);
}

TEST(CliTest, EitherSideFlagsMakeTwoFilters) {
  auto r = request({"observe", "--pod", "client", "-n", "default", "--verdict", "dropped",
                    "--protocol", "tcp", "--port", "8080"});
  ASSERT_EQ(r.whitelist_size(), 2);
  const auto& l = r.whitelist(0);
  const auto& rt = r.whitelist(1);
  ASSERT_EQ(l.source_pod_size(), 1);
  EXPECT_EQ(l.source_pod(0), "default/client");
  EXPECT_EQ(l.source_port(0), "8080");
  EXPECT_EQ(l.destination_pod_size(), 0);
  ASSERT_EQ(rt.destination_pod_size(), 1);
  EXPECT_EQ(rt.destination_pod(0), "default/client");
  EXPECT_EQ(rt.destination_port(0), "8080");
  for (const auto& f : r.whitelist()) {
    ASSERT_EQ(f.verdict_size(), 1);
    EXPECT_EQ(f.verdict(0), flow::DROPPED);
    EXPECT_EQ(f.protocol(0), "tcp");
  }
}

TEST(CliTest, FromToFlagsPinASide) {
  auto r = request({"observe", "--from-pod", "default/client", "--to-label", "app=server",
                    "--to-port", "80", "--type", "trace:to-endpoint", "--drop-reason-desc",
                    "policy_denied", "--from-ip", "10.0.0.0/8", "--to-identity", "257"});
  ASSERT_EQ(r.whitelist_size(), 1);
  const auto& f = r.whitelist(0);
  EXPECT_EQ(f.source_pod(0), "default/client");
  EXPECT_EQ(f.destination_label(0), "app=server");
  EXPECT_EQ(f.destination_port(0), "80");
  EXPECT_EQ(f.source_ip(0), "10.0.0.0/8");
  EXPECT_EQ(f.destination_identity(0), 257u);
  ASSERT_EQ(f.event_type_size(), 1);
  EXPECT_EQ(f.event_type(0).type(), EVENT_TRACE);
  EXPECT_TRUE(f.event_type(0).match_sub_type());
  EXPECT_EQ(f.event_type(0).sub_type(), TRACE_TO_LXC);
  EXPECT_EQ(f.drop_reason_desc(0), flow::POLICY_DENIED);
}

TEST(CliTest, NamespaceAloneSelectsTheNamespaceOnEitherSide) {
  auto r = request({"observe", "--namespace", "kube-system"});
  ASSERT_EQ(r.whitelist_size(), 2);
  EXPECT_EQ(r.whitelist(0).source_pod(0), "kube-system/");
  EXPECT_EQ(r.whitelist(1).destination_pod(0), "kube-system/");
}

TEST(CliTest, BadFilterValues) {
  auto bad = [](std::vector<std::string> argv) {
    auto a = parseArgs(argv);
    if (!a.ok()) return true;
    return !buildRequest(a->observe, 0).ok();
  };
  EXPECT_TRUE(bad({"observe", "--verdict", "maybe"}));
  EXPECT_TRUE(bad({"observe", "--type", "trace:nowhere"}));
  EXPECT_TRUE(bad({"observe", "--drop-reason-desc", "because"}));
  EXPECT_TRUE(bad({"observe", "--since", "yesterday"}));
  EXPECT_TRUE(bad({"observe", "--tcp-flags", "SYN,XMAS"}));
  EXPECT_TRUE(bad({"observe", "--from-identity", "web"}));
}

TEST(CliTest, SinceUntil) {
  auto r = request({"observe", "--since", "5m", "--until", "2026-11-22T21:00:00.5Z"});
  EXPECT_EQ(r.since().seconds(), 2'000'000'000 - 300);
  EXPECT_EQ(r.until().seconds(), 1795381200);
  EXPECT_EQ(r.until().nanos(), 500000000);
  EXPECT_EQ(r.number(), 0u);
}

TEST(CliTest, RequestsSelectTheFlowsTheFlagsSay) {
  // The request the CLI builds, compiled by the server's filter code, on real decoded flows.
  StaticResolver res;
  res.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                  {*IpAddr::parse("10.200.0.11")});
  res.addEndpoint({2, 257, "server", "default", {"k8s:app=server"}},
                  {*IpAddr::parse("10.200.0.12")});
  Decoder d(DecoderOptions{"n", 1}, &res, &res);
  flow::Flow fwd, drop;
  ASSERT_TRUE(d.decode(hubble::testing::makeEvent(hubble::testing::EventSpec{}), fwd).ok());
  ASSERT_TRUE(d.decode(hubble::testing::makeEvent(hubble::testing::policyDrop()), drop).ok());
  auto allows = [&](std::vector<std::string> argv, const flow::Flow& f) {
    auto req = request(std::move(argv));
    auto ff = FlowFilters::compile(req.whitelist(), req.blacklist());
    EXPECT_TRUE(ff.ok());
    return ff->allows(f);
  };
  EXPECT_TRUE(allows({"observe", "--pod", "default/server"}, fwd));
  EXPECT_TRUE(allows({"observe", "--pod", "default/client"}, fwd));
  EXPECT_FALSE(allows({"observe", "--from-pod", "default/server"}, fwd));
  EXPECT_TRUE(allows({"observe", "--verdict", "DROPPED", "--label", "app=server"}, drop));
  EXPECT_FALSE(allows({"observe", "--verdict", "DROPPED"}, fwd));
  EXPECT_TRUE(allows({"observe", "--to-port", "8080", "--protocol", "TCP"}, fwd));
  EXPECT_FALSE(allows({"observe", "--port", "9090"}, fwd));
}

// Dual-stack pods' IPv6 flows: named like their IPv4 flows, IPv6 addresses in brackets before a
// port with --numeric, and --ip / --from-ip / --to-ip take IPv6 addresses and prefixes (never
// matching the other family).
TEST(CliTest, Ipv6FlowsPrintAndFilterLikeIpv4Ones) {
  StaticResolver res;
  res.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                  {*IpAddr::parse("10.200.0.11"), *IpAddr::parse("fd00:200::11")});
  res.addEndpoint({2, 257, "server", "default", {"k8s:app=server"}},
                  {*IpAddr::parse("10.200.0.12"), *IpAddr::parse("fd00:200::12")});
  Decoder d(DecoderOptions{"n", 1'795'381'200'000'000'000}, &res, &res);
  hubble::testing::EventSpec spec = hubble::testing::policyDrop();
  spec.src = "fd00:200::11";
  spec.dst = "fd00:200::12";
  observer::GetFlowsResponse r;
  ASSERT_TRUE(d.decode(hubble::testing::makeEvent(spec), *r.mutable_flow()).ok());
  const flow::Flow& v6 = r.flow();
  EXPECT_EQ(v6.ip().ipversion(), flow::IPv6);
  EXPECT_EQ(formatCompact(r),
            "Nov 22 21:00:00.000: default/client:40000 (ID:256) -> default/server:8080 (ID:257) "
            "Policy denied DROPPED (TCP Flags: SYN)");
  EXPECT_EQ(formatCompact(r, parse({"observe", "--numeric"}).observe.print),
            "Nov 22 21:00:00.000: [fd00:200::11]:40000 (ID:256) -> [fd00:200::12]:8080 (ID:257) "
            "Policy denied DROPPED (TCP Flags: SYN)");
  flow::Flow v4;
  ASSERT_TRUE(d.decode(hubble::testing::makeEvent(hubble::testing::policyDrop()), v4).ok());

  auto allows = [&](std::vector<std::string> argv, const flow::Flow& f) {
    auto req = request(std::move(argv));
    auto ff = FlowFilters::compile(req.whitelist(), req.blacklist());
    EXPECT_TRUE(ff.ok());
    return ff.ok() && ff->allows(f);
  };
  EXPECT_TRUE(allows({"observe", "--ip", "fd00:200::12"}, v6));
  EXPECT_TRUE(allows({"observe", "--ip", "fd00:200::/64"}, v6));
  EXPECT_FALSE(allows({"observe", "--ip", "fd00:200::/64"}, v4));
  EXPECT_FALSE(allows({"observe", "--ip", "10.200.0.0/24"}, v6)) << "no match across families";
  EXPECT_TRUE(allows({"observe", "--from-ip", "fd00:200::11"}, v6));
  EXPECT_FALSE(allows({"observe", "--from-ip", "fd00:200::12"}, v6));
  EXPECT_TRUE(allows({"observe", "--to-ip", "fd00:200::12/128"}, v6));
  EXPECT_FALSE(allows({"observe", "--to-ip", "fd00:201::/64"}, v6));
  EXPECT_TRUE(allows({"observe", "--ip-version", "v6", "--from-pod", "default/client"}, v6));
  EXPECT_FALSE(allows({"observe", "--ip-version", "v6"}, v4));
  EXPECT_TRUE(allows({"observe", "--ip-version", "v4"}, v4));
  // A malformed IPv6 address or prefix is refused, not matched as nothing or everything.
  EXPECT_FALSE(
      FlowFilters::compile(request({"observe", "--ip", "fd00:200::/129"}).whitelist(), {}).ok());
}

TEST(CliTest, CompactOutputReadsLikeHubbles) {
  StaticResolver res;
  res.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                  {*IpAddr::parse("10.200.0.11")});
  res.addEndpoint({2, 257, "server", "default", {"k8s:app=server"}},
                  {*IpAddr::parse("10.200.0.12")});
  Decoder d(DecoderOptions{"n", 1'795'381'200'000'000'000}, &res, &res);
  observer::GetFlowsResponse r;
  ASSERT_TRUE(
      d.decode(hubble::testing::makeEvent(hubble::testing::policyDrop()), *r.mutable_flow()).ok());
  EXPECT_EQ(formatCompact(r),
            "Nov 22 21:00:00.000: default/client:40000 (ID:256) -> default/server:8080 (ID:257) "
            "Policy denied DROPPED (TCP Flags: SYN)");
  ASSERT_TRUE(
      d.decode(hubble::testing::makeEvent(hubble::testing::EventSpec{}), *r.mutable_flow()).ok());
  EXPECT_EQ(formatCompact(r),
            "Nov 22 21:00:00.000: default/client:40000 (ID:256) -> default/server:8080 (ID:257) "
            "to-endpoint FORWARDED (TCP Flags: SYN)");
  // An address the flow names (the local endpoint's DNS lookups) prints as its names.
  observer::GetFlowsResponse named = r;
  named.mutable_flow()->mutable_destination()->clear_pod_name();
  named.mutable_flow()->add_destination_names("alderaan.galaxy.test");
  EXPECT_EQ(formatCompact(named),
            "Nov 22 21:00:00.000: default/client:40000 (ID:256) -> alderaan.galaxy.test:8080 "
            "(ID:257) to-endpoint FORWARDED (TCP Flags: SYN)");
  auto json = formatJson(r);
  EXPECT_NE(json.find("\"verdict\":\"FORWARDED\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"pod_name\":\"server\""), std::string::npos) << json;
  observer::GetFlowsResponse lost;
  lost.mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
  lost.mutable_lost_events()->set_num_events_lost(12);
  EXPECT_EQ(formatCompact(lost), "EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 12");
}

// Three flows as the decoder makes them (a policy drop, a forward, an L3-L4 policy verdict) and
// a lost event, with the node name.
std::vector<observer::GetFlowsResponse> sampleResponses() {
  StaticResolver res;
  res.addEndpoint({1, 256, "client", "default", {"k8s:app=client"}},
                  {*IpAddr::parse("10.200.0.11")});
  res.addEndpoint({2, 257, "server", "default", {"k8s:app=server"}},
                  {*IpAddr::parse("10.200.0.12")});
  Decoder d(DecoderOptions{"n", 1'795'381'200'000'000'000}, &res, &res);
  std::vector<observer::GetFlowsResponse> out(4);
  EXPECT_TRUE(
      d.decode(hubble::testing::makeEvent(hubble::testing::policyDrop()), *out[0].mutable_flow())
          .ok());
  EXPECT_TRUE(
      d.decode(hubble::testing::makeEvent(hubble::testing::EventSpec{}), *out[1].mutable_flow())
          .ok());
  out[2] = out[1];
  auto* v = out[2].mutable_flow();
  v->mutable_event_type()->set_type(EVENT_POLICY_VERDICT);
  v->set_policy_match_type(2);
  v->set_traffic_direction(flow::INGRESS);
  out[3].mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
  out[3].mutable_lost_events()->set_num_events_lost(12);
  out[3].mutable_lost_events()->mutable_cpu()->set_value(2);
  return out;
}

std::pair<std::string, std::string> print(Output o, PrintOptions p,
                                          const std::vector<observer::GetFlowsResponse>& rs) {
  std::ostringstream out, err;
  {
    FlowPrinter printer(o, p, out, err);
    for (const auto& r : rs) printer.write(r);
  }
  return {out.str(), err.str()};
}

// `-o table` as Hubble's tabwriter lays it out: columns as wide as their widest cell plus 3.
TEST(CliTest, TableOutputAsHubblePrintsIt) {
  PrintOptions p;
  p.node_name = true;
  auto [out, err] = print(Output::kTable, p, sampleResponses());
  EXPECT_EQ(out,
            "TIMESTAMP             NODE   SOURCE                 DESTINATION           TYPE       "
            "                    VERDICT     SUMMARY\n"
            "Nov 22 21:00:00.000   n      default/client:40000   default/server:8080   Policy "
            "denied                  DROPPED     TCP Flags: SYN\n"
            "Nov 22 21:00:00.000   n      default/client:40000   default/server:8080   "
            "to-endpoint                    FORWARDED   TCP Flags: SYN\n"
            "Nov 22 21:00:00.000   n      default/client:40000   default/server:8080   "
            "policy-verdict:L3-L4 INGRESS   ALLOWED     TCP Flags: SYN\n"
            "                             HUBBLE_RING_BUFFER                           EVENTS "
            "LOST                                CPU(2) - 12\n");
  EXPECT_EQ(err, "");
  // Without the node column, and --numeric: addresses instead of pods.
  auto rs = sampleResponses();
  rs.resize(1);
  PrintOptions numeric;
  numeric.numeric = true;
  EXPECT_EQ(
      print(Output::kTable, numeric, rs).first,
      "TIMESTAMP             SOURCE              DESTINATION        TYPE            VERDICT   "
      "SUMMARY\n"
      "Nov 22 21:00:00.000   10.200.0.11:40000   10.200.0.12:8080   Policy denied   DROPPED   "
      "TCP Flags: SYN\n");
  // No rows, no header.
  EXPECT_EQ(print(Output::kTable, {}, {}).first, "");
}

// `-o dict`: right-aligned keys, "------------" between records.
TEST(CliTest, DictOutputAsHubblePrintsIt) {
  auto rs = sampleResponses();
  rs.erase(rs.begin() + 1);
  PrintOptions p;
  p.node_name = true;
  auto [out, err] = print(Output::kDict, p, rs);
  EXPECT_EQ(out,
            "  TIMESTAMP: Nov 22 21:00:00.000\n"
            "       NODE: n\n"
            "     SOURCE: default/client:40000\n"
            "DESTINATION: default/server:8080\n"
            "       TYPE: Policy denied\n"
            "    VERDICT: DROPPED\n"
            "    SUMMARY: TCP Flags: SYN\n"
            "------------\n"
            "  TIMESTAMP: Nov 22 21:00:00.000\n"
            "       NODE: n\n"
            "     SOURCE: default/client:40000\n"
            "DESTINATION: default/server:8080\n"
            "       TYPE: policy-verdict:L3-L4 INGRESS\n"
            "    VERDICT: ALLOWED\n"
            "    SUMMARY: TCP Flags: SYN\n"
            "------------\n"
            "  TIMESTAMP: \n"
            "       NODE: \n"
            "     SOURCE: HUBBLE_RING_BUFFER\n"
            "       TYPE: EVENTS LOST\n"
            "    VERDICT: \n"
            "    SUMMARY: CPU(2) - 12\n");
  EXPECT_EQ(err, "");
}

// Host names as Hubble's: pod, else service, else DNS names, else the address; IPv6 in
// brackets before a port; L7 types; policy-verdict drops read DENIED.
TEST(CliTest, HostNamesTypesAndVerdictsAsHubble) {
  observer::GetFlowsResponse r;
  auto* f = r.mutable_flow();
  f->mutable_time()->set_seconds(1'795'381'200);
  f->mutable_ip()->set_source("fd00::1");
  f->mutable_ip()->set_destination("10.96.0.10");
  f->mutable_l4()->mutable_udp()->set_source_port(5353);
  f->mutable_l4()->mutable_udp()->set_destination_port(53);
  f->mutable_destination_service()->set_name("kube-dns");
  f->mutable_destination_service()->set_namespace_("kube-system");
  f->mutable_event_type()->set_type(EVENT_POLICY_VERDICT);
  f->set_verdict(flow::DROPPED);
  f->set_traffic_direction(flow::EGRESS);
  f->set_summary("UDP");
  auto [out, err] = print(Output::kDict, {}, {r});
  EXPECT_NE(out.find("     SOURCE: [fd00::1]:5353\n"), std::string::npos) << out;
  EXPECT_NE(out.find("DESTINATION: kube-system/kube-dns:53\n"), std::string::npos) << out;
  EXPECT_NE(out.find("       TYPE: policy-verdict:none EGRESS\n"), std::string::npos) << out;
  EXPECT_NE(out.find("    VERDICT: DENIED\n"), std::string::npos) << out;
  f->mutable_destination_service()->Clear();
  f->add_destination_names("a.example");
  f->add_destination_names("b.example");
  f->mutable_event_type()->set_type(kMessageTypeAccessLog);
  f->mutable_l7()->set_type(flow::RESPONSE);
  f->mutable_l7()->mutable_http()->set_code(200);
  out = print(Output::kDict, {}, {r}).first;
  EXPECT_NE(out.find("DESTINATION: a.example,b.example:53\n"), std::string::npos) << out;
  EXPECT_NE(out.find("       TYPE: http-response\n"), std::string::npos) << out;
  EXPECT_NE(out.find("    VERDICT: DROPPED\n"), std::string::npos) << out;
}

// Relay node events go to stderr as Hubble prints them; informational ones are not printed.
TEST(CliTest, NodeStatusEventsGoToStderr) {
  observer::GetFlowsResponse r;
  r.mutable_time()->set_seconds(1'795'381'200);
  r.set_node_name("relay");
  auto* s = r.mutable_node_status();
  s->set_state_change(relay::NODE_UNAVAILABLE);
  s->add_node_names("node-2");
  s->add_node_names("node-3");
  auto [out, err] = print(Output::kTable, {}, {r});
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "Nov 22 21:00:00.000 [relay]: 2 nodes are unavailable: node-2, node-3\n");
  s->set_state_change(relay::NODE_ERROR);
  s->set_message("connection refused");
  EXPECT_EQ(print(Output::kCompact, {}, {r}).second,
            "Nov 22 21:00:00.000 [relay]: Error \"connection refused\" on 2 nodes: node-2, "
            "node-3\n");
  EXPECT_EQ(print(Output::kDict, {}, {r}).second,
            "  TIMESTAMP: Nov 22 21:00:00.000\n"
            "      STATE: NODE_ERROR\n"
            "      NODES: node-2, node-3\n"
            "    MESSAGE: \"connection refused\"\n");
  s->set_state_change(relay::NODE_CONNECTED);
  auto quiet = print(Output::kCompact, {}, {r});
  EXPECT_EQ(quiet.first + quiet.second, "");
  // --debug: the informational ones too, as Hubble's printer in debug mode.
  PrintOptions debug;
  debug.debug = true;
  EXPECT_EQ(print(Output::kCompact, debug, {r}).second,
            "Nov 22 21:00:00.000 [relay]: Receiving flows from 2 nodes: node-2, node-3\n");
  s->set_state_change(relay::NODE_GONE);
  EXPECT_EQ(print(Output::kTable, debug, {r}).second,
            "Nov 22 21:00:00.000 [relay]: 2 nodes removed from cluster: node-2, node-3\n");
  EXPECT_TRUE(parse({"--debug", "observe"}).observe.print.debug);
  EXPECT_TRUE(parse({"observe", "-D"}).debug);
  EXPECT_FALSE(parse({"observe"}).observe.print.debug);
}

// `hubble observe agent-events` / `debug-events`: their flags, requests and output as Hubble
// prints them.
TEST(CliTest, AgentAndDebugEvents) {
  auto a = parse({"observe", "agent-events", "--last", "5", "-o", "dict", "--print-node-name"});
  EXPECT_EQ(a.command, "agent-events");
  EXPECT_EQ(a.observe.output, Output::kDict);
  auto req = buildAgentEventsRequest(a.observe, 2'000'000'000'000'000'000);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->number(), 5u);
  EXPECT_FALSE(req->follow());
  auto d = parse({"observe", "debug-events", "-f", "--since", "5m"});
  EXPECT_EQ(d.command, "debug-events");
  auto dreq = buildDebugEventsRequest(d.observe, 2'000'000'000'000'000'000);
  ASSERT_TRUE(dreq.ok());
  EXPECT_TRUE(dreq->follow());
  EXPECT_EQ(dreq->number(), 0u);
  EXPECT_EQ(dreq->since().seconds(), 2'000'000'000 - 300);
  EXPECT_EQ(buildAgentEventsRequest(parse({"observe", "agent-events"}).observe, 0)->number(), 20u);
  // Flow filters mean nothing to events: refused, not ignored.
  auto bad = parseArgs({"observe", "agent-events", "--pod", "web"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--pod"), std::string::npos);
  EXPECT_FALSE(parseArgs({"observe", "debug-events", "--not", "--pod", "web"}).ok());

  observer::GetAgentEventsResponse ae;
  ae.mutable_time()->set_seconds(1'795'381'200);
  ae.set_node_name("default/node-1");
  ae.mutable_agent_event()->set_type(flow::ENDPOINT_CREATED);
  ae.mutable_agent_event()->mutable_endpoint_update()->set_id(12);
  ae.mutable_agent_event()->mutable_endpoint_update()->set_namespace_("default");
  ae.mutable_agent_event()->mutable_endpoint_update()->set_pod_name("web");
  auto printed = [](Output o, PrintOptions p, const auto& r) {
    std::ostringstream out, err;
    {
      FlowPrinter printer(o, p, out, err);
      printer.write(r);
      printer.write(r);
    }
    return out.str();
  };
  PrintOptions node;
  node.node_name = true;
  EXPECT_EQ(printed(Output::kCompact, {}, ae),
            "Nov 22 21:00:00.000: ENDPOINT_CREATED (id: 12, namespace: default, pod name: web)\n"
            "Nov 22 21:00:00.000: ENDPOINT_CREATED (id: 12, namespace: default, pod name: web)\n");
  EXPECT_EQ(printed(Output::kDict, node, ae),
            "  TIMESTAMP: Nov 22 21:00:00.000\n"
            "       NODE: default/node-1\n"
            "       TYPE: ENDPOINT_CREATED\n"
            "    DETAILS: id: 12, namespace: default, pod name: web\n"
            "------------\n"
            "  TIMESTAMP: Nov 22 21:00:00.000\n"
            "       NODE: default/node-1\n"
            "       TYPE: ENDPOINT_CREATED\n"
            "    DETAILS: id: 12, namespace: default, pod name: web\n");
  EXPECT_EQ(printed(Output::kTable, {}, ae),
            "TIMESTAMP             TYPE               DETAILS\n"
            "Nov 22 21:00:00.000   ENDPOINT_CREATED   id: 12, namespace: default, pod name: web\n"
            "Nov 22 21:00:00.000   ENDPOINT_CREATED   id: 12, namespace: default, pod name: web\n");
  flow::AgentEvent pol;
  pol.set_type(flow::POLICY_UPDATED);
  pol.mutable_policy_update()->add_labels("k8s:io.cilium.k8s.policy.name=rule1");
  pol.mutable_policy_update()->set_revision(7);
  pol.mutable_policy_update()->set_rule_count(2);
  EXPECT_EQ(agentEventDetails(pol, TimeFormat::kStampMilli),
            "labels: [k8s:io.cilium.k8s.policy.name=rule1], revision: 7, count: 2");
  flow::AgentEvent svc;
  svc.set_type(flow::SERVICE_UPSERTED);
  svc.mutable_service_upsert()->set_id(3);
  svc.mutable_service_upsert()->mutable_frontend_address()->set_ip("10.96.0.10");
  svc.mutable_service_upsert()->mutable_frontend_address()->set_port(53);
  auto* be = svc.mutable_service_upsert()->add_backend_addresses();
  be->set_ip("10.200.1.5");
  be->set_port(53);
  svc.mutable_service_upsert()->set_type("ClusterIP");
  svc.mutable_service_upsert()->set_namespace_("kube-system");
  svc.mutable_service_upsert()->set_name("kube-dns");
  EXPECT_EQ(agentEventDetails(svc, TimeFormat::kStampMilli),
            "id: 3, frontend: 10.96.0.10:53, backends: [10.200.1.5:53], type: ClusterIP, "
            "namespace: kube-system, name: kube-dns");

  observer::GetDebugEventsResponse de;
  de.mutable_time()->set_seconds(1'795'381'200);
  auto* e = de.mutable_debug_event();
  e->set_type(flow::DBG_CT_MATCH);
  e->mutable_source()->set_id(1234);
  e->mutable_source()->set_namespace_("default");
  e->mutable_source()->set_pod_name("web");
  e->mutable_hash()->set_value(0x2a);
  e->mutable_cpu()->set_value(1);
  e->set_message("Conntrack lookup 1/2: src=10.200.0.11:40000 dst=10.200.0.12:80");
  const std::string line =
      "Nov 22 21:00:00.000: default/web (ID: 1234) DBG_CT_MATCH MARK: 0x2a CPU: 01 (Conntrack "
      "lookup 1/2: src=10.200.0.11:40000 dst=10.200.0.12:80)\n";
  EXPECT_EQ(printed(Output::kCompact, {}, de), line + line);
  e->set_type(static_cast<flow::DebugEventType>(40));  // a code this proto does not name
  e->clear_source();
  std::ostringstream out, err;
  {
    FlowPrinter printer(Output::kDict, {}, out, err);
    printer.write(de);
  }
  EXPECT_EQ(out.str(),
            "  TIMESTAMP: Nov 22 21:00:00.000\n"
            "       TYPE: 40\n"
            "       FROM: N/A\n"
            "       MARK: 0x2a\n"
            "        CPU: 01\n"
            "    MESSAGE: Conntrack lookup 1/2: src=10.200.0.11:40000 dst=10.200.0.12:80\n");
}

TEST(CliTest, TlsFlags) {
  auto a = parse({"--server", "relay:4245", "--tls", "--tls-ca-cert-files", "a.crt,b.crt",
                  "--tls-ca-cert-files", "c.crt", "--tls-client-cert-file", "c.crt",
                  "--tls-client-key-file", "c.key", "--tls-server-name",
                  "relay.hubble-relay.cilium.io", "status"});
  EXPECT_TRUE(a.tls.enabled);
  EXPECT_EQ(a.tls.ca_files, (std::vector<std::string>{"a.crt", "b.crt", "c.crt"}));
  EXPECT_EQ(a.tls.cert_file, "c.crt");
  EXPECT_EQ(a.tls.key_file, "c.key");
  EXPECT_EQ(a.tls.server_name, "relay.hubble-relay.cilium.io");
  EXPECT_TRUE(parse({"--server", "tls://relay:4245", "status"}).tls.enabled);
  EXPECT_FALSE(parse({"--server", "relay:4245", "status"}).tls.enabled);
  // Flags after the subcommand, as users type them.
  EXPECT_TRUE(parse({"observe", "--tls", "--server", "relay:4245"}).tls.enabled);
  // A TLS option without TLS would go out in plaintext: refused.
  auto plain = parseArgs({"--tls-ca-cert-files", "ca.crt", "status"});
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.error().message().find("needs --tls"), std::string::npos);
  EXPECT_FALSE(parseArgs({"--tls", "--tls-client-cert-file", "c.crt", "status"}).ok());
  EXPECT_FALSE(parseArgs({"--tls", "--server", "unix:///x.sock", "status"}).ok());
  // --tls-allow-insecure: TLS without checking the server; it needs --tls like the others.
  EXPECT_TRUE(parse({"--tls", "--tls-allow-insecure", "--server", "relay:4245", "status"})
                  .tls.allow_insecure);
  EXPECT_FALSE(parse({"--tls", "--server", "relay:4245", "status"}).tls.allow_insecure);
  auto insecure_plain = parseArgs({"--tls-allow-insecure", "--server", "relay:4245", "status"});
  ASSERT_FALSE(insecure_plain.ok());
  EXPECT_NE(insecure_plain.error().message().find("needs --tls"), std::string::npos);
}

TEST(CliTest, ServerTargets) {
  EXPECT_EQ(*grpcTarget("unix:///var/run/cilium/hubble.sock"),
            "unix:///var/run/cilium/hubble.sock");
  EXPECT_EQ(*grpcTarget("/tmp/h.sock"), "unix:///tmp/h.sock");
  EXPECT_EQ(*grpcTarget("localhost:4244"), "localhost:4244");
  EXPECT_EQ(*grpcTarget("tls://relay.example:4245"), "relay.example:4245");
  EXPECT_FALSE(grpcTarget("tls://relay.example").ok());
  EXPECT_FALSE(grpcTarget("https://relay.example:4245").ok());
  EXPECT_FALSE(grpcTarget("localhost").ok());
}

}  // namespace
}  // namespace cilium::hubble::cli
