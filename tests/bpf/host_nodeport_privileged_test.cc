// bpf tier: bpf_host (lib/nodeport.h) on a native device through BPF_PROG_TEST_RUN: NodePort
// to a local backend (DNAT, delivered to the pod's veth, client address kept, replies
// translated back on egress), to a remote backend (SNAT to the device's address with a node port,
// the backend's replies translated back), externalTrafficPolicy=Local (outside clients get only
// local backends, pods every backend), the refusal of a frontend without backends, what
// bpf_host must leave alone, and DSR (lib/nodeport_dsr.h): the IPv4 option the load-balancing
// node puts on a connection's first packet, what the backend's node makes of it, and the
// malformed options it drops.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <map>
#include <set>

#include "agent/common/netns.h"
#include "agent/common/subprocess.h"
#include "agent/service/host_datapath.h"
#include "agent/service/maglev.h"
#include "agent/service/service.h"
#include "tests/bpf/lxc_fixture.h"
#include "tests/harness/packet_assert.h"
#include "tests/harness/service_maps.h"

namespace cilium::testing {
namespace {

constexpr const char* kNode = "10.200.0.1";      // the device's address (the router address)
constexpr const char* kGateway = "10.200.0.50";  // the "ext" pod: the device's neighbour
constexpr const char* kClient = "192.0.2.10";    // outside, routed through the neighbour
constexpr const char* kRemoteBackend = "10.250.0.5";
constexpr const char* kExternalIp = "203.0.113.7";
constexpr uint16_t kNodePort = 30080;

class HostNodePortTest : public LxcTest {
 protected:
  void SetUp() override {
    LxcTest::SetUp();
    setPolicy(a_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    setPolicy(b_, {allowEntry(0, POLICY_EGRESS), allowEntry(0, POLICY_INGRESS)});
    // The native device: a veth whose peer stands for the network (and the remote node). In
    // the family tests the node forwards IPv6 too (bpf_fib_lookup wants forwarding on the
    // device the packet came in on) and the device has an IPv6 SNAT address.
    if (dual_stack_) {
      ASSERT_TRUE(topo_->enableNodeIpv6().ok());
    }
    auto ext = topo_->addPod("ext", kGateway, dual_stack_ ? v6Twin(kGateway) : "");
    ASSERT_TRUE(ext.ok()) << ext.error().toString();
    ext_ = *ext;
    std::vector<std::vector<std::string>> cmds = {
        {"ip", "route", "add", "10.250.0.0/24", "via", kGateway, "dev", ext_.host_ifname},
        {"ip", "route", "add", "192.0.2.0/24", "via", kGateway, "dev", ext_.host_ifname},
        {"ip", "neigh", "replace", kGateway, "lladdr", ext_.mac, "dev", ext_.host_ifname}};
    if (dual_stack_)
      cmds.insert(cmds.end(), {{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
                               {"ip", "-6", "route", "add", "fd00:250::/64", "via",
                                v6Twin(kGateway), "dev", ext_.host_ifname},
                               {"ip", "-6", "route", "add", "2001:db8::/64", "via",
                                v6Twin(kGateway), "dev", ext_.host_ifname},
                               {"ip", "-6", "neigh", "replace", v6Twin(kGateway), "lladdr",
                                ext_.mac, "dev", ext_.host_ifname}});
    for (const auto& cmd : cmds) {
      auto r = topo_->exec(topo_->nodeNetns(), cmd);
      ASSERT_TRUE(r.ok() && r->exit_code == 0) << fmt::format("{}", fmt::join(cmd, " "));
    }
    std::string pin = *topo_->pinDir();
    auto host = service::HostDatapath::load(pin, hostOptions());
    ASSERT_TRUE(host.ok()) << host.error().toString();
    host_ = std::move(*host);
    std::optional<IpAddr> node6;
    if (dual_stack_) node6 = *IpAddr::parse(v6Twin(kNode));
    ASSERT_TRUE(runInNetns(topo_->nodeNetns(), [&] {
                  return host_->attachDevice(ext_.host_ifindex, *IpAddr::parse(kNode),
                                             service::XdpMode::kDisabled, node6);
                }).ok());
    auto lb = testing::openServiceMaps(pin);
    ASSERT_TRUE(lb.ok()) << lb.error().toString();
    lb_ = std::move(*lb);
    service::ManagerConfig cfg{{*IpAddr::parse(kNode)}};
    if (node6) cfg.node_ips.push_back(*node6);
    mgr_ = std::make_unique<service::Manager>(lb_.maps(), cfg);
    events();
  }

  virtual service::HostOptions hostOptions() const { return {}; }

  void program(service::Protocol proto, std::vector<service::Backend> bes,
               service::TrafficPolicy etp = service::TrafficPolicy::kCluster) {
    service::Service s;
    s.name = {"default", "web"};
    s.cluster_ip = *IpAddr::parse("10.96.0.10");
    s.external_ips = {*IpAddr::parse(kExternalIp)};
    if (dual_stack_) {  // a dual-stack Service: each family's frontends get its backends
      s.more_cluster_ips = {*IpAddr::parse(v6Twin("10.96.0.10"))};
      s.external_ips.push_back(*IpAddr::parse(v6Twin(kExternalIp)));
    }
    s.ext_traffic_policy = etp;
    service::ServicePort p;
    p.name = "p";
    p.proto = proto;
    p.port = 80;
    p.node_port = kNodePort;
    p.backends = std::move(bes);
    s.ports.push_back(p);
    auto st = mgr_->upsertService(s);
    ASSERT_TRUE(st.ok()) << st.error().toString();
  }
  // ICMP(v6) error types of the test's family: fragmentation needed (3/4) or packet too big
  // (2/0); destination unreachable (3 or 1) with port unreachable (3 or 4).
  uint8_t tooBigType() const { return family_ == Family::kV6 ? 2 : 3; }
  uint8_t tooBigCode() const { return family_ == Family::kV6 ? 0 : 4; }
  uint8_t unreachType() const { return family_ == Family::kV6 ? 1 : 3; }
  uint8_t portUnreachCode() const { return family_ == Family::kV6 ? 4 : 3; }
  // Backends in the family the test speaks (family_).
  service::Backend local(const TestEndpoint& ep) {
    return {*IpAddr::parse(ipOf(ep)), 8080, service::BackendState::kActive, true};
  }
  service::Backend remote() {
    return {*IpAddr::parse(addr(kRemoteBackend)), 8080, service::BackendState::kActive, false};
  }

  // A packet arriving from the network on the device.
  PacketBuilder fromNetwork() const {
    PacketBuilder b;
    b.eth(mac(ext_.mac), mac(ext_.host_mac));
    return b;
  }
  bpf::TestRunResult runOnDevice(const bpf_program* prog, const std::vector<uint8_t>& packet) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(ext_.host_ifindex);
    auto r = runInNetnsValue<bpf::TestRunResult>(
        topo_->nodeNetns(), [&] { return bpf::testRun(prog, packet, {.repeat = 1, .ctx = ctx}); });
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : bpf::TestRunResult{.retval = -1};
  }
  bpf::TestRunResult ingress(const std::vector<uint8_t>& packet) {
    return runOnDevice(host_->programs().from_netdev, packet);
  }
  bpf::TestRunResult egress(const std::vector<uint8_t>& packet) {
    return runOnDevice(host_->programs().to_netdev, packet);
  }

  struct XdpResult {
    int retval = -1;
    std::vector<uint8_t> packet;
  };
  // Runs cil_xdp_entry as if the packet arrived on the device.
  XdpResult xdp(const std::vector<uint8_t>& pkt) {
    auto r = runInNetnsValue<XdpResult>(topo_->nodeNetns(), [&]() -> Result<XdpResult> {
      xdp_md ctx{};
      ctx.data_end = static_cast<uint32_t>(pkt.size());
      ctx.ingress_ifindex = static_cast<uint32_t>(ext_.host_ifindex);
      std::vector<uint8_t> out(pkt.size() + 256);
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = out.data(),
                  .data_size_in = static_cast<uint32_t>(pkt.size()),
                  .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
                  .ctx_size_in = sizeof(ctx), .repeat = 1);
      if (bpf_prog_test_run_opts(bpf_program__fd(host_->programs().xdp), &o) != 0)
        return errnoError(errno, "XDP test run");
      out.resize(o.data_size_out);
      return XdpResult{static_cast<int>(o.retval), out};
    });
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : XdpResult{};
  }

  Pod ext_;
  std::unique_ptr<service::HostDatapath> host_;
  testing::ServiceMapSet lb_;
  std::unique_ptr<service::Manager> mgr_;
};

// The paths both families have (lib/nodeport.h, lib/nodeport6.h): the Service is dual stack,
// the test speaks one family (addr(): the IPv6 twins of the constants above).
using HostNodePortFamilyTest = FamilyTest<HostNodePortTest>;
CILIUM_INSTANTIATE_FAMILIES(HostNodePortFamilyTest);

TEST_P(HostNodePortFamilyTest, LocalBackendKeepsTheClientAndRepliesComeFromTheNodePort) {
  program(service::Protocol::kTcp, {local(a_)});
  const std::string node = addr(kNode), client = addr(kClient);
  auto syn = fromNetwork().ip(client, node).tcp(40000, kNodePort, tcp::kSyn).build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), ipOf(a_));
  EXPECT_EQ(p->dport, 8080);
  EXPECT_EQ(srcOf(*p), client) << "no SNAT for a local backend";
  EXPECT_EQ(p->sport, 40000);
  EXPECT_EQ(p->dst_mac, a_.mac);
  EXPECT_EQ(p->src_mac, a_.host_mac);
  EXPECT_EQ(p->ttl, 63);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  auto np = ctEntry(client, ipOf(a_), 40000, 8080, 6, CT_KEY_NODEPORT);
  ASSERT_TRUE(np) << "the connection is recorded for the reply's translation";
  EXPECT_NE(np->lb_id, 0u);

  // The pod's reply, routed by the node's stack to the device.
  auto synack = PacketBuilder()
                    .eth(mac(ext_.host_mac), mac(ext_.mac))
                    .ip(ipOf(a_), client)
                    .tcp(8080, 40000, tcp::kSyn | tcp::kAck)
                    .build();
  r = egress(synack);
  ASSERT_EQ(r.retval, TC_ACT_OK);
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), node) << "the client sees the NodePort";
  EXPECT_EQ(p->sport, kNodePort);
  EXPECT_EQ(dstOf(*p), client);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // The node's own traffic on the device passes untouched.
  auto own = PacketBuilder()
                 .eth(mac(ext_.host_mac), mac(ext_.mac))
                 .ip(node, client)
                 .tcp(22, 40000, tcp::kAck)
                 .build();
  r = egress(own);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, own);
}

TEST_P(HostNodePortFamilyTest, RemoteBackendIsSnatedAndItsRepliesTranslatedBack) {
  program(service::Protocol::kTcp, {remote()});
  const std::string node = addr(kNode), client = addr(kClient), backend = addr(kRemoteBackend);
  auto syn = fromNetwork().ip(client, node).tcp(40001, kNodePort, tcp::kSyn).build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), backend);
  EXPECT_EQ(p->dport, 8080);
  EXPECT_EQ(srcOf(*p), node) << "SNAT to the device's address";
  uint16_t node_port = p->sport;
  EXPECT_GE(node_port, NAT_PORT_MIN);
  EXPECT_EQ(p->dst_mac, mac(ext_.mac)) << "to the next hop's MAC from the FIB";
  EXPECT_EQ(p->src_mac, mac(ext_.host_mac));
  EXPECT_EQ(p->ttl, 63);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // The same connection keeps its node port.
  auto ack = fromNetwork().ip(client, node).tcp(40001, kNodePort, tcp::kAck).build();
  r = ingress(ack);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(parsePacket(r.packet)->sport, node_port);

  auto synack = fromNetwork().ip(backend, node).tcp(8080, node_port, tcp::kSyn | tcp::kAck).build();
  r = ingress(synack);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), client);
  EXPECT_EQ(p->dport, 40001);
  EXPECT_EQ(srcOf(*p), node);
  EXPECT_EQ(p->sport, kNodePort);
  EXPECT_EQ(p->ttl, 63);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // A packet to a node port nobody allocated is the node's own business.
  auto stray = fromNetwork().ip(backend, node).tcp(8080, 64999, tcp::kAck).build();
  r = ingress(stray);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, stray);
}

TEST_P(HostNodePortFamilyTest, NoBackendIsRefusedBackOutOfTheDevice) {
  program(service::Protocol::kTcp, {});
  const std::string node = addr(kNode), client = addr(kClient);
  auto syn = fromNetwork().ip(client, node).tcp(40002, kNodePort, tcp::kSyn, 5000).build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(srcOf(*p), node);
  EXPECT_EQ(p->sport, kNodePort);
  EXPECT_EQ(dstOf(*p), client);
  EXPECT_EQ(p->dport, 40002);
  EXPECT_EQ(p->tcp_flags, tcp::kRst | tcp::kAck);
  EXPECT_EQ(p->dst_mac, mac(ext_.mac)) << "back to the sender";
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  EXPECT_EQ(r.ctx->ifindex, static_cast<uint32_t>(ext_.host_ifindex));
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_NO_SERVICE);

  program(service::Protocol::kUdp, {});
  auto q = fromNetwork().ip(client, node).udp(40003, kNodePort).payload("q").build();
  r = ingress(q);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->proto, icmpProto());
  // Destination unreachable, port unreachable: ICMP 3/3, ICMPv6 1/4.
  EXPECT_EQ(p->icmp_type, family_ == Family::kV6 ? 1 : 3);
  EXPECT_EQ(p->icmp_code, family_ == Family::kV6 ? 4 : 3);
  EXPECT_EQ(dstOf(*p), client);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
}

// ICMP errors about NodePort connections are translated like the connections they quote, both
// ways, so that path MTU discovery works through the node (lib/nodeport_icmp.h,
// lib/nodeport6.h): fragmentation needed / packet too big, port unreachable.
TEST_P(HostNodePortFamilyTest, IcmpErrorsFollowTheirRemoteBackendConnection) {
  program(service::Protocol::kTcp, {remote()});
  const std::string node = addr(kNode), client = addr(kClient), backend = addr(kRemoteBackend);
  auto syn = fromNetwork().ip(client, node).tcp(40002, kNodePort, tcp::kSyn).build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  uint16_t node_port = parsePacket(r.packet)->sport;

  // A router towards the backend: the SNATed segment {node:node_port -> backend} is too big.
  auto sent = PacketBuilder().ip(node, backend).tcp(node_port, 8080, tcp::kAck).build();
  auto too_big = fromNetwork()
                     .ip(addr("10.250.0.1"), node)
                     .icmpError(tooBigType(), tooBigCode(), {sent.begin() + 14, sent.end()});
  r = ingress(too_big.build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  // From the frontend the client talks to, about the client's own connection as it knows it.
  EXPECT_TRUE(isIcmpError(r.packet, node, client, client, 40002, node, kNodePort));

  // A router towards the client: the frontend's reply {node:nodeport -> client} is too big.
  auto reply = PacketBuilder().ip(node, client).tcp(kNodePort, 40002, tcp::kAck).build();
  too_big = fromNetwork()
                .ip(addr("192.0.2.1"), node)
                .icmpError(tooBigType(), tooBigCode(), {reply.begin() + 14, reply.end()});
  r = ingress(too_big.build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  // About the connection as the backend knows it.
  EXPECT_TRUE(isIcmpError(r.packet, node, backend, backend, 8080, node, node_port));

  // An error about no connection of ours is the stack's.
  auto other = PacketBuilder().ip(node, client).tcp(22, 40999, tcp::kAck).build();
  auto stray = fromNetwork()
                   .ip(addr("192.0.2.1"), node)
                   .icmpError(tooBigType(), tooBigCode(), {other.begin() + 14, other.end()})
                   .build();
  r = ingress(stray);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, stray);
}

TEST_P(HostNodePortFamilyTest, IcmpErrorsFollowTheirLocalBackendConnection) {
  program(service::Protocol::kTcp, {local(a_)});
  const std::string node = addr(kNode), client = addr(kClient), router = addr("192.0.2.1");
  auto syn = fromNetwork().ip(client, node).tcp(40003, kNodePort, tcp::kSyn).build();
  ASSERT_EQ(ingress(syn).retval, TC_ACT_REDIRECT) << describe(events());

  // From the client's side, about the frontend's reply: to the pod, about its own segment.
  auto reply = PacketBuilder().ip(node, client).tcp(kNodePort, 40003, tcp::kAck).build();
  auto r = ingress(fromNetwork()
                       .ip(router, node)
                       .icmpError(tooBigType(), tooBigCode(), {reply.begin() + 14, reply.end()})
                       .build());
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  EXPECT_TRUE(isIcmpError(r.packet, router, ipOf(a_), ipOf(a_), 8080, client, 40003));
  EXPECT_EQ(parsePacket(r.packet)->dst_mac, a_.mac);

  // From the pod to the client, about the client's segment: as from the frontend.
  auto in = PacketBuilder().ip(client, ipOf(a_)).tcp(40003, 8080, tcp::kAck).build();
  auto err = PacketBuilder()
                 .eth(mac(ext_.host_mac), mac(ext_.mac))
                 .ip(ipOf(a_), client)
                 .icmpError(unreachType(), portUnreachCode(), {in.begin() + 14, in.end()})
                 .build();
  r = egress(err);
  ASSERT_EQ(r.retval, TC_ACT_OK);
  EXPECT_TRUE(isIcmpError(r.packet, node, client, client, 40003, node, kNodePort));
}

TEST_F(HostNodePortTest, ExternalTrafficPolicyLocalGivesOutsideOnlyLocalBackends) {
  program(service::Protocol::kTcp, {local(a_), remote()}, service::TrafficPolicy::kLocal);
  // Two entries for the externalIP: external (local backends) and internal (all).
  lb4_key k{};
  k.address = htonl(ipv4(kExternalIp));
  k.dport = htons(80);
  k.proto = 6;
  auto ext = lb_.services->lookup(k);
  ASSERT_TRUE(ext.ok() && *ext);
  EXPECT_EQ((*ext)->count, 1);
  EXPECT_TRUE((*ext)->flags2 & SVC_F2_TWO_SCOPES);
  k.scope = LB_SCOPE_INTERNAL;
  auto in = lb_.services->lookup(k);
  ASSERT_TRUE(in.ok() && *in);
  EXPECT_EQ((*in)->count, 2);

  for (uint16_t sport = 41000; sport < 41030; sport++) {
    auto syn = fromNetwork().ipv4(kClient, kExternalIp).tcp(sport, 80, tcp::kSyn).build();
    auto r = ingress(syn);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->daddr, ipv4(a_.pod.ip));
    EXPECT_EQ(p->saddr, ipv4(kClient)) << "client address preserved";
  }
  // A pod (per-packet LB in bpf_lxc) reaches both backends through the internal scope.
  std::set<uint32_t> seen;
  for (uint16_t sport = 42000; sport < 42060 && seen.size() < 2; sport++) {
    auto syn = from(b_).ipv4(b_.pod.ip, kExternalIp).tcp(sport, 80, tcp::kSyn).build();
    auto r = fromContainer(b_, syn);
    ASSERT_TRUE(r.retval == TC_ACT_REDIRECT || r.retval == TC_ACT_OK) << describe(events());
    seen.insert(parsePacket(r.packet)->daddr);
  }
  EXPECT_EQ(seen, (std::set<uint32_t>{ipv4(a_.pod.ip), ipv4(kRemoteBackend)}));

  // Back to Cluster: one scope again, and outside clients reach the remote backend too.
  program(service::Protocol::kTcp, {local(a_), remote()});
  ASSERT_TRUE(lb_.services->lookup(k).ok());
  EXPECT_FALSE(*lb_.services->lookup(k)) << "the internal entry is gone";
}

TEST_F(HostNodePortTest, WhatIsNotAnOutsideFrontendPassesUntouched) {
  program(service::Protocol::kTcp, {local(a_)});
  // The ClusterIP is not served to the outside.
  auto cip = fromNetwork().ipv4(kClient, "10.96.0.10").tcp(40004, 80, tcp::kSyn).build();
  auto r = ingress(cip);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, cip);
  // Traffic to the node itself, ICMP, and a port that is no NodePort.
  for (const auto& pkt :
       {fromNetwork().ipv4(kClient, kNode).tcp(40005, 22, tcp::kSyn).build(),
        fromNetwork().ipv4(kClient, kNode).icmp(8, 0, 7, 1).build(),
        fromNetwork().ipv4(kClient, kNode).udp(40006, kNodePort + 1).payload("x").build()}) {
    r = ingress(pkt);
    EXPECT_EQ(r.retval, TC_ACT_OK);
    EXPECT_EQ(r.packet, pkt);
  }
}

TEST_F(HostNodePortTest, MaglevPicksTheTableEntryOfTheConnectionsHash) {
  auto opened = bpf::KernelMap<lb4_maglev_key, lb4_maglev_chunk>::fromPinned(*topo_->pinDir() +
                                                                             "/cilium_lb4_maglev");
  ASSERT_TRUE(opened.ok()) << opened.error().toString();
  auto& maglev = *opened;
  service::ManagerConfig cfg{{*IpAddr::parse(kNode)}};
  cfg.algorithm = service::LbAlgorithm::kMaglev;
  cfg.maglev_table_size = 1021;
  service::ServiceMaps maps = lb_.maps();
  maps.maglev = maglev.get();
  mgr_ = std::make_unique<service::Manager>(maps, cfg);
  std::vector<service::Backend> bes;
  for (const char* ip : {"10.250.0.5", "10.250.0.6", "10.250.0.7"})
    bes.push_back({*IpAddr::parse(ip), 8080, service::BackendState::kActive, false});
  program(service::Protocol::kTcp, bes);
  lb4_key k{};
  k.address = htonl(ipv4(kNode));
  k.dport = htons(kNodePort);
  k.proto = 6;
  auto fe = **lb_.services->lookup(k);
  ASSERT_TRUE(fe.flags2 & SVC_F2_MAGLEV);
  ASSERT_EQ(fe.maglev_size, 1021);

  std::set<uint32_t> used;
  for (uint16_t sport = 43000; sport < 43040; sport++) {
    uint32_t idx = service::lbTupleHash(ipv4(kClient), sport, 6) % fe.maglev_size;
    auto chunk = maglev->lookup({fe.rev_nat_index, fe.gen, static_cast<uint16_t>(idx / 64)});
    ASSERT_TRUE(chunk.ok() && *chunk);
    auto be = lb_.backends->lookup((*chunk)->backend_ids[idx % 64]);
    ASSERT_TRUE(be.ok() && *be);
    auto syn = fromNetwork().ipv4(kClient, kNode).tcp(sport, kNodePort, tcp::kSyn).build();
    auto r = ingress(syn);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->daddr, ntohl((*be)->address)) << "sport " << sport;
    used.insert(p->daddr);
  }
  EXPECT_EQ(used.size(), 3u);
}

TEST_P(HostNodePortFamilyTest, XdpTranslatesRemoteBackendsAndPassesTheRest) {
  program(service::Protocol::kTcp, {remote()});
  const std::string node = addr(kNode), client = addr(kClient), backend = addr(kRemoteBackend);
  auto syn = fromNetwork().ip(client, node).tcp(44000, kNodePort, tcp::kSyn).build();
  auto r = xdp(syn);
  ASSERT_EQ(r.retval, XDP_TX) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), backend);
  EXPECT_EQ(p->dport, 8080);
  EXPECT_EQ(srcOf(*p), node);
  uint16_t node_port = p->sport;
  EXPECT_GE(node_port, NAT_PORT_MIN);
  EXPECT_EQ(p->dst_mac, mac(ext_.mac));
  EXPECT_EQ(p->ttl, 63);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);
  // The tc program finds the mapping XDP made: the connection keeps its node port either way.
  auto ack = fromNetwork().ip(client, node).tcp(44000, kNodePort, tcp::kAck).build();
  auto t = ingress(ack);
  ASSERT_EQ(t.retval, TC_ACT_REDIRECT);
  EXPECT_EQ(parsePacket(t.packet)->sport, node_port);

  auto data = fromNetwork()
                  .ip(client, node)
                  .tcp(44000, kNodePort, tcp::kAck | tcp::kPsh)
                  .payload(1428)
                  .build();
  r = xdp(data);
  ASSERT_EQ(r.retval, XDP_TX) << "a full-sized segment";
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->sport, node_port);
  EXPECT_TRUE(p->l4_csum_ok);

  auto synack =
      fromNetwork().ip(backend, node).tcp(8080, node_port, tcp::kSyn | tcp::kAck).build();
  r = xdp(synack);
  ASSERT_EQ(r.retval, XDP_TX);
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), client);
  EXPECT_EQ(p->dport, 44000);
  EXPECT_EQ(srcOf(*p), node);
  EXPECT_EQ(p->sport, kNodePort);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  program(service::Protocol::kUdp, {remote()});
  auto q = fromNetwork().ip(client, node).udp(44001, kNodePort).payload("query").build();
  r = xdp(q);
  ASSERT_EQ(r.retval, XDP_TX);
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(dstOf(*p), backend);
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok) << "UDP checksum updated";

  // What XDP leaves to tc, untouched: a local backend, no backend, anything else.
  program(service::Protocol::kTcp, {local(a_)});
  auto to_local = fromNetwork().ip(client, node).tcp(44002, kNodePort, tcp::kSyn).build();
  r = xdp(to_local);
  EXPECT_EQ(r.retval, XDP_PASS);
  EXPECT_EQ(r.packet, to_local);
  program(service::Protocol::kTcp, {});
  r = xdp(to_local);
  EXPECT_EQ(r.retval, XDP_PASS);
  EXPECT_EQ(r.packet, to_local);
  auto ssh = fromNetwork().ip(client, node).tcp(44003, 22, tcp::kSyn).build();
  r = xdp(ssh);
  EXPECT_EQ(r.retval, XDP_PASS);
  EXPECT_EQ(r.packet, ssh);
}

// bpf_host with bpf-lb-mode=dsr or hybrid (the test's parameter).
class HostDsrTest : public HostNodePortTest, public ::testing::WithParamInterface<uint8_t> {
 protected:
  service::HostOptions hostOptions() const override {
    service::HostOptions o;
    o.lb_mode = GetParam();
    return o;
  }
  bool udpDsr() const { return GetParam() == LB_MODE_DSR; }

  // The DSR option naming frontend address:port (host order), as it goes on the wire.
  static std::vector<uint8_t> dsrOption(const char* addr, uint16_t port) {
    uint32_t a = ipv4(addr);
    return {DSR_IPV4_OPT_TYPE,
            8,
            static_cast<uint8_t>(port >> 8),
            static_cast<uint8_t>(port),
            static_cast<uint8_t>(a >> 24),
            static_cast<uint8_t>(a >> 16),
            static_cast<uint8_t>(a >> 8),
            static_cast<uint8_t>(a)};
  }
  std::optional<ct_entry> dsrEntry(const std::string& pod, uint16_t sport, uint8_t proto) {
    return ctEntry(kClient, pod.c_str(), sport, 8080, proto, CT_KEY_NODEPORT);
  }
};

TEST_P(HostDsrTest, RemoteBackendKeepsTheClientAndTheSynCarriesTheFrontend) {
  program(service::Protocol::kTcp, {remote()});
  auto syn = fromNetwork().ipv4(kClient, kNode).tcp(45000, kNodePort, tcp::kSyn).build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kClient)) << "no SNAT: the backend's node answers the client";
  EXPECT_EQ(p->sport, 45000);
  EXPECT_EQ(p->daddr, ipv4(kRemoteBackend));
  EXPECT_EQ(p->dport, 8080);
  EXPECT_EQ(p->ip_options, dsrOption(kNode, kNodePort)) << "IHL 7: the option after 20 bytes";
  EXPECT_EQ(p->tot_len, syn.size() - 14 + 8);
  EXPECT_EQ(r.packet.size(), syn.size() + 8);
  EXPECT_EQ(p->ttl, 63);
  EXPECT_EQ(p->dst_mac, mac(ext_.mac));
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok) << "the pseudo-header has no options";

  // The rest of the connection goes without the option, to the same backend, still unSNATed.
  auto data = fromNetwork()
                  .ipv4(kClient, kNode)
                  .tcp(45000, kNodePort, tcp::kAck | tcp::kPsh)
                  .payload(1460)
                  .build();
  r = ingress(data);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->ip_options.empty()) << "a full-size segment stays full-size";
  EXPECT_EQ(r.packet.size(), data.size());
  EXPECT_EQ(p->saddr, ipv4(kClient));
  EXPECT_EQ(p->daddr, ipv4(kRemoteBackend));
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // No node port was taken for it.
  auto nat = host_->nat().count();
  ASSERT_TRUE(nat.ok());
  EXPECT_EQ(*nat, 0u);

  // XDP leaves DSR connections to tc.
  auto x = xdp(syn);
  EXPECT_EQ(x.retval, XDP_PASS);
  EXPECT_EQ(x.packet, syn);
}

TEST_P(HostDsrTest, UdpIsDsrOnEveryDatagramOrSnatInHybridMode) {
  program(service::Protocol::kUdp, {remote()});
  for (int i = 0; i < 2; i++) {
    auto q = fromNetwork().ipv4(kClient, kNode).udp(45100, kNodePort).payload("query").build();
    auto r = ingress(q);
    ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
    auto p = parsePacket(r.packet);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->daddr, ipv4(kRemoteBackend));
    EXPECT_TRUE(p->ip_csum_ok);
    EXPECT_TRUE(p->l4_csum_ok);
    if (udpDsr()) {
      EXPECT_EQ(p->saddr, ipv4(kClient));
      EXPECT_EQ(p->ip_options, dsrOption(kNode, kNodePort)) << "datagram " << i;
    } else {
      EXPECT_EQ(p->saddr, ipv4(kNode)) << "hybrid: UDP is SNATed";
      EXPECT_TRUE(p->ip_options.empty());
    }
  }
  // A datagram that fills the MTU has no room for the option: DSR drops it (fragmentation
  // needed), SNAT sends it.
  auto big = fromNetwork().ipv4(kClient, kNode).udp(45101, kNodePort).payload(1472).build();
  events();
  auto r = ingress(big);
  if (udpDsr()) {
    EXPECT_EQ(r.retval, TC_ACT_SHOT);
    auto drops = ofType(events(), EVENT_DROP);
    ASSERT_EQ(drops.size(), 1u);
    EXPECT_EQ(drops[0].subtype, DROP_FRAG_NEEDED);
  } else {
    EXPECT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  }
}

TEST_P(HostDsrTest, HostNetworkBackendIsSnated) {
  // A backend at another node's own address: its stack would answer from that address.
  setIpcache(kRemoteBackend, 32, IDENTITY_REMOTE_NODE);
  program(service::Protocol::kTcp, {remote()});
  auto syn = fromNetwork().ipv4(kClient, kNode).tcp(45200, kNodePort, tcp::kSyn).build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT) << describe(events());
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kNode));
  EXPECT_TRUE(p->ip_options.empty());
}

// The backend's node: the option makes the pod's replies leave from the frontend.
TEST_P(HostDsrTest, BackendNodeRepliesFromTheFrontendTheOptionNamed) {
  constexpr const char* kFrontend = "10.200.9.9";  // another node's NodePort address
  auto syn = fromNetwork()
                 .ipv4(kClient, a_.pod.ip)
                 .ipOptions(dsrOption(kFrontend, kNodePort))
                 .tcp(45300, 8080, tcp::kSyn)
                 .build();
  auto r = ingress(syn);
  ASSERT_EQ(r.retval, TC_ACT_OK) << "on to the pod through the stack and bpf_lxc's policy";
  EXPECT_EQ(r.packet, syn);
  auto e = dsrEntry(a_.pod.ip, 45300, 6);
  ASSERT_TRUE(e) << describe(events());
  EXPECT_TRUE(e->flags & CT_F_DSR);
  EXPECT_EQ(ntohl(e->lb_id), ipv4(kFrontend));
  EXPECT_EQ(ntohs(e->rev_nat_index), kNodePort);

  auto synack = PacketBuilder()
                    .eth(mac(ext_.host_mac), mac(ext_.mac))
                    .ipv4(a_.pod.ip, kClient)
                    .tcp(8080, 45300, tcp::kSyn | tcp::kAck)
                    .build();
  r = egress(synack);
  ASSERT_EQ(r.retval, TC_ACT_OK);
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kFrontend)) << "the client sees the frontend it addressed";
  EXPECT_EQ(p->sport, kNodePort);
  EXPECT_EQ(p->daddr, ipv4(kClient));
  EXPECT_TRUE(p->ip_csum_ok);
  EXPECT_TRUE(p->l4_csum_ok);

  // The rest of the connection carries no option; the entry stays and answers.
  auto ack = fromNetwork().ipv4(kClient, a_.pod.ip).tcp(45300, 8080, tcp::kAck).build();
  r = ingress(ack);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  e = dsrEntry(a_.pod.ip, 45300, 6);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->flags & CT_F_SEEN_NON_SYN);
  auto data = PacketBuilder()
                  .eth(mac(ext_.host_mac), mac(ext_.mac))
                  .ipv4(a_.pod.ip, kClient)
                  .tcp(8080, 45300, tcp::kAck)
                  .payload(100)
                  .build();
  r = egress(data);
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kFrontend));
  EXPECT_TRUE(p->l4_csum_ok);

  // A new SYN on the tuple without the option is a direct connection: the entry goes.
  auto direct = fromNetwork().ipv4(kClient, a_.pod.ip).tcp(45300, 8080, tcp::kSyn).build();
  EXPECT_EQ(ingress(direct).retval, TC_ACT_OK);
  EXPECT_FALSE(dsrEntry(a_.pod.ip, 45300, 6));
  r = egress(synack);
  EXPECT_EQ(r.packet, synack) << "a direct connection's reply keeps the pod's address";

  // UDP: every datagram names the frontend.
  auto q = fromNetwork()
               .ipv4(kClient, a_.pod.ip)
               .ipOptions(dsrOption(kFrontend, kNodePort))
               .udp(45301, 8080)
               .payload("q")
               .build();
  EXPECT_EQ(ingress(q).retval, TC_ACT_OK);
  auto answer = PacketBuilder()
                    .eth(mac(ext_.host_mac), mac(ext_.mac))
                    .ipv4(a_.pod.ip, kClient)
                    .udp(8080, 45301)
                    .payload("a")
                    .build();
  r = egress(answer);
  p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saddr, ipv4(kFrontend));
  EXPECT_EQ(p->sport, kNodePort);
  EXPECT_TRUE(p->l4_csum_ok);
}

// Fail closed: a malformed DSR option is dropped with a reason and records nothing; other
// options are not ours to judge.
TEST_P(HostDsrTest, MalformedOptionsAreDropped) {
  auto opt = dsrOption("10.200.9.9", kNodePort);
  std::vector<uint8_t> wrong_len = opt;
  wrong_len[1] = 12;  // longer than the option is
  std::vector<uint8_t> short_len = opt;
  short_len[1] = 4;
  std::vector<uint8_t> truncated(opt.begin(), opt.begin() + 4);  // IHL 6: half the option
  truncated[1] = 8;
  uint16_t sport = 45400;
  for (const auto& bad : {wrong_len, short_len, truncated}) {
    events();
    auto syn =
        fromNetwork().ipv4(kClient, a_.pod.ip).ipOptions(bad).tcp(sport, 8080, tcp::kSyn).build();
    auto r = ingress(syn);
    EXPECT_EQ(r.retval, TC_ACT_SHOT) << "option length " << int(bad[1]) << ", " << bad.size();
    auto drops = ofType(events(), EVENT_DROP);
    ASSERT_EQ(drops.size(), 1u);
    EXPECT_EQ(drops[0].subtype, DROP_INVALID);
    EXPECT_FALSE(dsrEntry(a_.pod.ip, sport, 6));
    sport++;
  }
  // Another option (a no-op and the end of the list) is the stack's: untouched.
  auto other =
      fromNetwork().ipv4(kClient, a_.pod.ip).ipOptions({1, 0}).tcp(sport, 8080, tcp::kSyn).build();
  auto r = ingress(other);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_EQ(r.packet, other);
  EXPECT_FALSE(dsrEntry(a_.pod.ip, sport, 6));
}

INSTANTIATE_TEST_SUITE_P(Modes, HostDsrTest, ::testing::Values(LB_MODE_DSR, LB_MODE_HYBRID),
                         [](const auto& info) {
                           return info.param == LB_MODE_DSR ? std::string("dsr")
                                                            : std::string("hybrid");
                         });

// In SNAT mode the option means nothing: no entry, the reply keeps the pod's address.
TEST_F(HostNodePortTest, SnatModeIgnoresTheDsrOption) {
  auto syn = fromNetwork()
                 .ipv4(kClient, a_.pod.ip)
                 .ipOptions({DSR_IPV4_OPT_TYPE, 8, 0x75, 0x80, 10, 200, 9, 9})
                 .tcp(45500, 8080, tcp::kSyn)
                 .build();
  auto r = ingress(syn);
  EXPECT_EQ(r.retval, TC_ACT_OK);
  EXPECT_FALSE(ctEntry(kClient, a_.pod.ip.c_str(), 45500, 8080, 6, CT_KEY_NODEPORT));
}

}  // namespace
}  // namespace cilium::testing
