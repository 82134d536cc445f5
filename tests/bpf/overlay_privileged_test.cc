// bpf tier: the tunnel path. bpf_lxc's decision to encapsulate (a remote pod whose ipcache entry
// names a tunnel endpoint, in tunnel mode, after egress policy) and bpf_overlay's decision on a
// decapsulated packet (the VNI is the sender's identity; the destination's ingress policy with
// it; delivery into the pod; replies through conntrack; clear drops otherwise). Every test runs
// for both inner families (dual-stack endpoints): IPv6 pods tunnel over the same IPv4 underlay.
#include <bpf/bpf.h>

#include "agent/bpf/attach.h"
#include "agent/bpf/skeleton.h"
#include "agent/common/netns.h"
#include "agent/datapath/tunnel.h"
#include "test_overlay_entry.skel.h"
#include "tests/bpf/lxc_fixture.h"
#include "tests/harness/endpoints.h"

namespace cilium::testing {
namespace {

constexpr const char* kNodeB = "172.31.250.2";  // the remote pods' node (tunnel endpoint)
constexpr uint8_t kTcp = 6;

uint32_t be(const std::string& ip) { return htonl(ipv4(ip)); }

class OverlayTest : public FamilyTest<LxcTest> {
 protected:
  bool v6() const { return family_ == Family::kV6; }
  void SetUp() override {
    FamilyTest<LxcTest>::SetUp();
    if (HasFatalFailure()) return;
    // kRemote1 lives on node B; kRemote2 has an identity but no tunnel endpoint.
    setRemote(kRemote1, kRemoteId1, kNodeB);
    auto s = runInNetns(topo_->nodeNetns(), [&]() -> Status {
      CILIUM_ASSIGN_OR_RETURN(vxlan_, datapath::ensureVxlanDevice(datapath::kDefaultTunnelPort));
      return dp_->attachOverlay(vxlan_);
    });
    ASSERT_TRUE(s.ok()) << s.error().toString();

    auto opened = bpf::OpenedSkeleton<test_overlay_entry>::open();
    ASSERT_TRUE(opened.ok()) << opened.error().toString();
    auto loaded = std::move(*opened).load();
    ASSERT_TRUE(loaded.ok()) << loaded.error().toString();
    entry_.emplace(std::move(*loaded));
    uint32_t key = 0;
    int prog_fd = bpf_program__fd(dp_->programs().from_overlay);
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd((*entry_)->maps.overlay_entry), &key, &prog_fd, 0),
              0);
    events();
  }

  void setRemote(const std::string& ip, uint32_t identity, const char* node) {
    remote_endpoint_info info{};
    info.sec_identity = identity;
    info.tunnel_endpoint.ip4 = be(node);
    info.flags = IPCACHE_F_HAS_TUNNEL_EP;
    ASSERT_TRUE(maps().ipcache->update(datapath::ipcacheKeyV4(be(ip), 32), info).ok());
    // The IPv6 twin tunnels to the same IPv4 node address.
    auto twin = IpPrefix::host(*IpAddr::parse(v6Twin(ip)));
    ASSERT_TRUE(maps().ipcache->update(datapath::ipcacheKey(twin), info).ok());
  }

  // Runs `prog` as if on cilium_vxlan's ingress, with cb[0..1] for the test entry program.
  bpf::TestRunResult runOnVxlan(const bpf_program* prog, const std::vector<uint8_t>& packet,
                                uint32_t vni = 0, const char* sender = kNodeB) {
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(vxlan_);
    ctx.cb[0] = vni;
    ctx.cb[1] = be(sender);
    auto r = runInNetnsValue<bpf::TestRunResult>(
        topo_->nodeNetns(), [&] { return bpf::testRun(prog, packet, {.repeat = 1, .ctx = ctx}); });
    EXPECT_TRUE(r.ok()) << r.error().toString();
    return r.ok() ? *r : bpf::TestRunResult{.retval = -1};
  }
  // A packet decapsulated by the VXLAN device, its tunnel key carrying `vni`.
  bpf::TestRunResult fromOverlay(uint32_t vni, const std::vector<uint8_t>& packet) {
    return runOnVxlan((*entry_)->progs.enter_overlay, packet, vni);
  }
  // What node B's pods send: their frame as it left their node, unchanged by the tunnel.
  PacketBuilder remoteFrame() const {
    PacketBuilder b;
    b.eth(mac("0a:00:00:00:00:01"), mac("0a:00:00:00:00:02"));
    return b;
  }

  int vxlan_ = 0;
  std::optional<bpf::LoadedSkeleton<test_overlay_entry>> entry_;
};

// --- bpf_lxc: the encapsulation decision --------------------------------------------------------

TEST_P(OverlayTest, PodToRemotePodIsEncapsulatedTowardsItsNode) {
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  events();
  auto in = from(a_).ip(ipOf(a_), addr(kRemote1), 64).tcp(41000, 80, tcp::kSyn).build();
  auto r = fromContainer(a_, in);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ttl, 64) << "the inner packet is untouched; the tunnel device adds the headers";
  if (v6()) {
    EXPECT_EQ(p->dst6, addr(kRemote1));
  } else {
    EXPECT_EQ(p->daddr, ipv4(kRemote1));
  }
  auto evs = events();
  auto traces = ofType(evs, EVENT_TRACE);
  ASSERT_EQ(traces.size(), 1u) << describe(evs);
  EXPECT_EQ(traces[0].subtype, TRACE_TO_OVERLAY);
  EXPECT_EQ(traces[0].src_identity, kIdentityA);
  EXPECT_EQ(traces[0].dst_identity, kRemoteId1) << "the identity came from the ipcache entry";
  if (!v6()) {
    EXPECT_TRUE(ctEntry(a_.pod.ip.c_str(), kRemote1, 41000, 80, kTcp, CT_KEY_EGRESS));
  }
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_EGRESS), 1u);
}

TEST_P(OverlayTest, EgressPolicyRunsBeforeEncapsulation) {
  setPolicy(a_, {allowEntry(kRemoteId2, POLICY_EGRESS)});
  events();
  auto r =
      fromContainer(a_, from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(41001, 80, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto evs = events();
  auto drops = ofType(evs, EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u) << describe(evs);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(drops[0].dst_identity, kRemoteId1);
  EXPECT_TRUE(ofType(evs, EVENT_TRACE).empty()) << describe(evs);
}

TEST_P(OverlayTest, DestinationsWithoutTunnelEndpointGoToTheStack) {
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  auto r =
      fromContainer(a_, from(a_).ip(ipOf(a_), addr(kRemote2)).tcp(41002, 80, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_OK);
  r = fromContainer(a_, from(a_).ip(ipOf(a_), addr(kWorld)).tcp(41003, 80, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_OK);
}

TEST_P(OverlayTest, WithoutTunnelModeTunnelEndpointsAreNotUsed) {
  setPolicy(a_, {allowEntry(0, POLICY_EGRESS)});
  auto s = runInNetns(topo_->nodeNetns(), [&] { return dp_->detachOverlay(); });
  ASSERT_TRUE(s.ok()) << s.error().toString();
  auto r =
      fromContainer(a_, from(a_).ip(ipOf(a_), addr(kRemote1)).tcp(41004, 80, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_OK) << "native routing: the stack routes it";
  // tcx ids are read in the node namespace where the device lives.
  auto in_ns = runInNetnsValue<std::vector<uint32_t>>(
      topo_->nodeNetns(), [&] { return bpf::tcxProgramIds(vxlan_, bpf::TcDirection::kIngress); });
  ASSERT_TRUE(in_ns.ok()) << in_ns.error().toString();
  EXPECT_TRUE(in_ns->empty()) << "bpf_overlay detached";
}

TEST_P(OverlayTest, IdentityTooLargeForTheVniIsDropped) {
  // Local-scope identities (CIDR) have bit 24 set and can never be a pod's; refuse, not truncate.
  ASSERT_TRUE(programEndpoint(maps(), c_.pod, c_.id, IDENTITY_LOCAL_FLAG | 5).ok());
  setPolicy(c_, {allowEntry(0, POLICY_EGRESS)});
  events();
  auto r = fromContainer(c_, from(c_).ip(ipOf(c_), addr(kRemote1)).udp(41005, 53).build());
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_INVALID_IDENTITY);
}

// --- bpf_overlay: the receiving node's decision
// ---------------------------------------------------

TEST_P(OverlayTest, AdmittedIdentityIsDeliveredIntoThePod) {
  setPolicy(b_, {allowEntry(kRemoteId1, POLICY_INGRESS, kTcp, 80, 16)});
  events();
  auto in = remoteFrame().ip(addr(kRemote1), ipOf(b_), 64).tcp(42000, 80, tcp::kSyn).build();
  auto r = fromOverlay(kRemoteId1, in);
  ASSERT_EQ(r.retval, TC_ACT_REDIRECT);
  auto p = parsePacket(r.packet);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dst_mac, b_.mac);
  EXPECT_EQ(p->src_mac, b_.host_mac);
  EXPECT_EQ(p->ttl, 63);
  EXPECT_TRUE(p->ip_csum_ok);
  auto evs = events();
  auto verdicts = ofType(evs, EVENT_POLICY_VERDICT);
  ASSERT_EQ(verdicts.size(), 1u) << describe(evs);
  EXPECT_EQ(verdicts[0].verdict, 0);
  EXPECT_EQ(verdicts[0].src_identity, kRemoteId1);
  EXPECT_EQ(verdicts[0].dst_identity, kIdentityB);
  EXPECT_EQ(verdicts[0].source, b_.id);
  EXPECT_EQ(verdicts[0].dir, METRIC_INGRESS);
  EXPECT_EQ(metric(REASON_FORWARDED, METRIC_INGRESS), 1u);
  if (v6()) return;  // ctEntry reads the IPv4 maps
  auto ct = ctEntry(kRemote1, b_.pod.ip.c_str(), 42000, 80, kTcp, CT_KEY_INGRESS);
  ASSERT_TRUE(ct);
  EXPECT_EQ(ct->src_sec_id, kRemoteId1);
}

TEST_P(OverlayTest, TheVniNotTheSourceAddressIsTheSendersIdentity) {
  setPolicy(b_, {allowEntry(kRemoteId1, POLICY_INGRESS)});
  events();
  // From kRemote1's address (ipcache: kRemoteId1) but with another identity in the VNI: denied.
  auto r = fromOverlay(
      kRemoteId2, remoteFrame().ip(addr(kRemote1), ipOf(b_)).tcp(42001, 80, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  auto evs = events();
  auto drops = ofType(evs, EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u) << describe(evs);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(drops[0].src_identity, kRemoteId2);
  EXPECT_EQ(drops[0].dst_identity, kIdentityB);
  EXPECT_EQ(drops[0].file, DROP_FILE_BPF_OVERLAY);
  EXPECT_EQ(metric(DROP_POLICY, METRIC_INGRESS), 1u);
  // From kRemote2's address (ipcache: kRemoteId2) with the admitted identity in the VNI: allowed.
  r = fromOverlay(kRemoteId1,
                  remoteFrame().ip(addr(kRemote2), ipOf(b_)).tcp(42002, 80, tcp::kSyn).build());
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
}

TEST_P(OverlayTest, RepliesOfThePodsConnectionsPassWithoutIngressPolicy) {
  // b_ may open connections to kRemote1; nothing is admitted in.
  setPolicy(b_, {allowEntry(0, POLICY_EGRESS)});
  auto out =
      fromContainer(b_, from(b_).ip(ipOf(b_), addr(kRemote1)).tcp(43000, 80, tcp::kSyn).build());
  ASSERT_EQ(out.retval, TC_ACT_REDIRECT);
  events();
  auto reply =
      remoteFrame().ip(addr(kRemote1), ipOf(b_)).tcp(80, 43000, tcp::kSyn | tcp::kAck).build();
  EXPECT_EQ(fromOverlay(kRemoteId1, reply).retval, TC_ACT_REDIRECT);
  // A new connection the other way is not a reply: default deny.
  auto in = remoteFrame().ip(addr(kRemote1), ipOf(b_)).tcp(43001, 80, tcp::kSyn).build();
  EXPECT_EQ(fromOverlay(kRemoteId1, in).retval, TC_ACT_SHOT);
}

TEST_P(OverlayTest, PacketsWithoutAnIdentityOrADestinationAreDropped) {
  setPolicy(b_, {allowEntry(0, POLICY_INGRESS)});
  events();
  auto to_b = remoteFrame().ip(addr(kRemote1), ipOf(b_)).udp(44000, 53).build();
  // No tunnel metadata at all (the program run directly).
  EXPECT_EQ(runOnVxlan(dp_->programs().from_overlay, to_b).retval, TC_ACT_SHOT);
  // VNI 0: nobody's identity, never "any".
  EXPECT_EQ(fromOverlay(0, to_b).retval, TC_ACT_SHOT);
  // An address that is no endpoint of this node.
  auto nowhere = remoteFrame().ip(addr(kRemote1), addr("10.200.0.99")).udp(44001, 53).build();
  EXPECT_EQ(fromOverlay(kRemoteId1, nowhere).retval, TC_ACT_SHOT);
  auto evs = events();
  auto drops = ofType(evs, EVENT_DROP);
  ASSERT_EQ(drops.size(), 3u) << describe(evs);
  EXPECT_EQ(drops[0].subtype, DROP_NO_TUNNEL_KEY);
  EXPECT_EQ(drops[1].subtype, DROP_INVALID_IDENTITY);
  EXPECT_EQ(drops[2].subtype, DROP_NO_LXC);
  for (const auto& d : drops) EXPECT_EQ(d.file, DROP_FILE_BPF_OVERLAY);
}

TEST_P(OverlayTest, TrafficToTheNodeGoesToItsStack) {
  if (v6()) GTEST_SKIP() << "the node has no IPv6 host endpoint (its own IPv6 address) yet";
  auto in = remoteFrame().ip(addr(kRemote1), topo_->routerIp()).icmp(8, 0, 9, 1).build();
  EXPECT_EQ(fromOverlay(kRemoteId1, in).retval, TC_ACT_OK);
}

CILIUM_INSTANTIATE_FAMILIES(OverlayTest);

}  // namespace
}  // namespace cilium::testing
