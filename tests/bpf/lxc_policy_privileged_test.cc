// bpf tier: bpf_lxc policy enforcement on crafted packets, table-driven: allow and deny per
// identity, port, protocol and direction; wildcards; port ranges; deny precedence; default allow
// vs default deny; revocation; endpoints that are not ready; atomic policy replacement; in-place
// policy changes that keep the inner map and never widen for packets in flight. The table and local
// delivery run over IPv4 and IPv6 (dual-stack endpoints).
#include <bpf/bpf.h>

#include <atomic>
#include <thread>

#include "agent/bpf/map.h"
#include "agent/identity/allocator.h"
#include "agent/policy/policy.h"
#include "tests/bpf/lxc_fixture.h"
#include "tests/harness/temp_dir.h"

namespace cilium::testing {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;
constexpr uint8_t E = POLICY_EGRESS, I = POLICY_INGRESS;

struct Probe {
  bool ingress;        // false: endpoint a sends to `remote`; true: `remote` sends to a
  const char* remote;  // address of the other end
  uint8_t proto;
  uint16_t dport;
  int drop;        // 0: passes; else the drop reason
  int match = -1;  // expected policy match type, when checked
};

struct PolicyCase {
  const char* name;
  std::vector<datapath::PolicyEntry> policy;  // endpoint a's, both directions
  std::vector<Probe> probes;
};

constexpr const char* R1 = "10.201.0.1";  // identity 2001
constexpr const char* R2 = "10.201.0.2";  // identity 2002
constexpr const char* W = "8.8.8.8";      // world
constexpr const char* H = "10.200.0.1";   // the node: host

std::vector<datapath::PolicyEntry> concat(std::vector<datapath::PolicyEntry> a,
                                          const std::vector<datapath::PolicyEntry>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<datapath::PolicyEntry> range(uint32_t id, uint8_t dir, uint8_t proto, uint16_t first,
                                         uint16_t last, bool deny = false) {
  std::vector<datapath::PolicyEntry> out;
  for (auto [port, bits] : datapath::portRangeBlocks(first, last))
    out.push_back(deny ? denyEntry(id, dir, proto, port, bits)
                       : allowEntry(id, dir, proto, port, bits));
  return out;
}

std::vector<PolicyCase> policyCases() {
  return {
      {"no entries: default deny both ways",
       {},
       {{false, R1, kTcp, 80, DROP_POLICY}, {true, R1, kTcp, 80, DROP_POLICY}}},
      {"default allow egress, default deny ingress",
       {allowEntry(0, E)},
       {{false, R1, kTcp, 80, 0, POLICY_MATCH_ALL},
        {false, W, kUdp, 53, 0},
        {false, R2, kIcmp, 0, 0},
        {true, R1, kTcp, 80, DROP_POLICY}}},
      {"allow by identity and port",
       {allowEntry(2001, E, kTcp, 80, 16)},
       {{false, R1, kTcp, 80, 0, POLICY_MATCH_L3_L4},
        {false, R1, kTcp, 81, DROP_POLICY},
        {false, R2, kTcp, 80, DROP_POLICY},
        {false, R1, kUdp, 80, DROP_POLICY}}},
      {"wildcard identity",
       {allowEntry(0, E, kTcp, 80, 16)},
       {{false, R2, kTcp, 80, 0, POLICY_MATCH_L4_ONLY},
        {false, W, kTcp, 80, 0},
        {false, R2, kTcp, 81, DROP_POLICY}}},
      {"wildcard protocol",
       {allowEntry(2001, E)},
       {{false, R1, kUdp, 53, 0, POLICY_MATCH_L3_ONLY},
        {false, R1, kIcmp, 0, 0},
        {false, R1, kTcp, 9999, 0},
        {false, R2, kUdp, 53, DROP_POLICY}}},
      {"wildcard port",
       {allowEntry(2001, E, kUdp)},
       {{false, R1, kUdp, 12345, 0, POLICY_MATCH_L3_PROTO}, {false, R1, kTcp, 12345, DROP_POLICY}}},
      {"wildcard identity and port",
       {allowEntry(0, E, kUdp)},
       {{false, R2, kUdp, 5353, 0, POLICY_MATCH_PROTO_ONLY}, {false, R2, kTcp, 5353, DROP_POLICY}}},
      {"port range 8080-8090",
       range(2001, E, kTcp, 8080, 8090),
       {{false, R1, kTcp, 8080, 0},
        {false, R1, kTcp, 8087, 0},
        {false, R1, kTcp, 8088, 0},
        {false, R1, kTcp, 8090, 0},
        {false, R1, kTcp, 8079, DROP_POLICY},
        {false, R1, kTcp, 8091, DROP_POLICY},
        {false, R2, kTcp, 8085, DROP_POLICY}}},
      {"deny port beats identity allow",
       {allowEntry(2001, E), denyEntry(2001, E, kTcp, 80, 16)},
       {{false, R1, kTcp, 80, DROP_POLICY_DENY, POLICY_MATCH_L3_L4}, {false, R1, kTcp, 81, 0}}},
      {"wildcard deny beats a more specific allow",
       {allowEntry(2001, E, kTcp, 80, 16), denyEntry(0, E, kTcp, 80, 16)},
       {{false, R1, kTcp, 80, DROP_POLICY_DENY, POLICY_MATCH_L4_ONLY}}},
      {"identity deny beats wildcard allow",
       {allowEntry(0, E), denyEntry(2001, E)},
       {{false, R1, kTcp, 80, DROP_POLICY_DENY, POLICY_MATCH_L3_ONLY},
        {false, R1, kIcmp, 0, DROP_POLICY_DENY},
        {false, R2, kTcp, 80, 0}}},
      {"protocol deny beats port allow",
       {allowEntry(0, E, kTcp, 80, 16), denyEntry(2001, E, kTcp)},
       {{false, R1, kTcp, 80, DROP_POLICY_DENY}, {false, R2, kTcp, 80, 0}}},
      {"deny of a port range inside an allow",
       concat({allowEntry(2001, E)}, range(2001, E, kTcp, 8080, 8087, true)),
       {{false, R1, kTcp, 8085, DROP_POLICY_DENY},
        {false, R1, kTcp, 8088, 0},
        {false, R1, kTcp, 8079, 0}}},
      {"directions are separate",
       {allowEntry(2001, I, kTcp, 80, 16)},
       {{true, R1, kTcp, 80, 0, POLICY_MATCH_L3_L4},
        {true, R2, kTcp, 80, DROP_POLICY},
        {true, R1, kTcp, 81, DROP_POLICY},
        {false, R1, kTcp, 80, DROP_POLICY}}},
      {"icmp by protocol",
       {allowEntry(2001, E, kIcmp), allowEntry(2001, I, kIcmp)},
       {{false, R1, kIcmp, 0, 0}, {true, R1, kIcmp, 0, 0}, {false, R1, kUdp, 53, DROP_POLICY}}},
      {"world and host identities",
       {allowEntry(IDENTITY_WORLD, E, kTcp, 443, 16), allowEntry(IDENTITY_HOST, I)},
       {{false, W, kTcp, 443, 0},
        {false, R1, kTcp, 443, DROP_POLICY},
        {true, H, kTcp, 10250, 0},
        {true, W, kTcp, 10250, DROP_POLICY}}},
  };
}

class LxcPolicyTest : public LxcTest {
 protected:
  std::vector<uint8_t> packet(const Probe& p, uint16_t sport) {
    PacketBuilder b = p.ingress ? to(a_) : from(a_);
    if (p.ingress)
      b.ip(addr(p.remote), ipOf(a_));
    else
      b.ip(ipOf(a_), addr(p.remote));
    if (p.proto == kTcp)
      b.tcp(sport, p.dport, tcp::kSyn);
    else if (p.proto == kUdp)
      b.udp(sport, p.dport);
    else
      b.echoRequest(sport, 1);
    return b.build();
  }

  // The kernel id of the endpoint's current inner policy map (0: none).
  uint32_t innerMapId(uint16_t endpoint_id) {
    auto outer = bpf::openPinned(*topo_->pinDir() + "/cilium_policy_v2");
    uint32_t key = endpoint_id, id = 0;
    if (!outer.ok() || ::bpf_map_lookup_elem(outer->get(), &key, &id) != 0) return 0;
    return id;
  }
  int verdict(uint16_t port, uint8_t proto = kTcp) {
    PacketBuilder b = from(a_);
    b.ipv4(a_.pod.ip, R1);
    if (proto == kTcp)
      b.tcp(next_sport_++, port, tcp::kSyn);
    else
      b.udp(next_sport_++, port);
    if (next_sport_ == 0) next_sport_ = 1024;
    fromContainer(a_, b.build());
    auto v = ofType(events(), EVENT_POLICY_VERDICT);
    return v.empty() ? 1 : -v.back().verdict;
  }
};

using LxcPolicyFamilyTest = FamilyTest<LxcPolicyTest>;
CILIUM_INSTANTIATE_FAMILIES(LxcPolicyFamilyTest);

TEST_P(LxcPolicyFamilyTest, TableOfPolicies) {
  for (const auto& c : policyCases()) {
    SCOPED_TRACE(c.name);
    auto policy = c.policy;
    // ICMP rules are per family, as Cilium's `icmps` fields: ICMPv6 is protocol 58.
    for (auto& e : policy)
      if (e.key.protocol == kIcmp) e.key.protocol = icmpProto();
    setPolicy(a_, policy);
    events();
    for (const auto& p : c.probes) {
      uint16_t sport = next_sport_++;
      uint8_t dir = p.ingress ? METRIC_INGRESS : METRIC_EGRESS;
      uint32_t remote_id = p.remote == std::string(R1)   ? 2001
                           : p.remote == std::string(R2) ? 2002
                           : p.remote == std::string(H)  ? IDENTITY_HOST
                                                         : IDENTITY_WORLD;
      SCOPED_TRACE(fmt::format("{} {} proto {} port {}", p.ingress ? "from" : "to", p.remote,
                               p.proto, p.dport));
      uint64_t before = metric(p.drop ? p.drop : REASON_FORWARDED, dir);
      auto pkt = packet(p, sport);
      auto r = p.ingress ? toContainer(a_, pkt) : fromContainer(a_, pkt);
      auto evs = events();
      EXPECT_EQ(r.retval, p.drop ? TC_ACT_SHOT : TC_ACT_OK) << describe(evs);
      EXPECT_EQ(metric(p.drop ? p.drop : REASON_FORWARDED, dir), before + 1);

      auto verdicts = ofType(evs, EVENT_POLICY_VERDICT);
      ASSERT_EQ(verdicts.size(), 1u) << describe(evs);
      EXPECT_EQ(verdicts[0].verdict, -p.drop);
      EXPECT_EQ(verdicts[0].src_identity, p.ingress ? remote_id : kIdentityA);
      EXPECT_EQ(verdicts[0].dst_identity, p.ingress ? kIdentityA : remote_id);
      EXPECT_EQ(verdicts[0].source, a_.id);
      EXPECT_EQ(verdicts[0].dir, dir);
      if (p.match >= 0) {
        EXPECT_EQ(verdicts[0].match_type, p.match) << describe(evs);
      }

      auto drops = ofType(evs, EVENT_DROP);
      if (!p.drop) {
        EXPECT_TRUE(drops.empty()) << describe(evs);
        continue;
      }
      ASSERT_EQ(drops.size(), 1u) << describe(evs);
      const auto& d = drops[0];
      EXPECT_EQ(d.subtype, p.drop);
      EXPECT_EQ(d.file, DROP_FILE_BPF_LXC);
      EXPECT_GT(d.line, 0);
      EXPECT_EQ(d.src_identity, p.ingress ? remote_id : kIdentityA);
      EXPECT_EQ(d.dst_identity, p.ingress ? kIdentityA : remote_id);
      EXPECT_EQ(d.ifindex, static_cast<uint32_t>(a_.pod.host_ifindex));
      EXPECT_EQ(d.tuple.proto, p.proto == kIcmp ? icmpProto() : p.proto);
      EXPECT_EQ(tupleAddr(d.tuple, true), addr(p.ingress ? p.remote : a_.pod.ip));
      EXPECT_EQ(tupleAddr(d.tuple, false), addr(p.ingress ? a_.pod.ip : p.remote));
      if (p.proto != kIcmp) {
        EXPECT_EQ(ntohs(d.tuple.dport), p.dport);
      }
      EXPECT_EQ(d.len_orig, pkt.size());
    }
  }
}

// A local pod: the sender's egress and the receiver's ingress both decide, in one program run.
TEST_P(LxcPolicyFamilyTest, LocalDeliveryNeedsBothEgressAndIngress) {
  auto syn = [&](uint16_t port) {
    return from(a_).ip(ipOf(a_), ipOf(b_)).tcp(next_sport_++, port, tcp::kSyn).build();
  };
  setPolicy(a_, {allowEntry(kIdentityB, E, kTcp, 80, 16), allowEntry(kIdentityB, E, kTcp, 81, 16)});
  setPolicy(b_, {allowEntry(kIdentityA, I, kTcp, 80, 16)});
  events();

  auto r = fromContainer(a_, syn(80));
  EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
  auto evs = events();
  auto verdicts = ofType(evs, EVENT_POLICY_VERDICT);
  ASSERT_EQ(verdicts.size(), 2u) << describe(evs);
  EXPECT_EQ(verdicts[0].dir, METRIC_EGRESS);
  EXPECT_EQ(verdicts[0].source, a_.id);
  EXPECT_EQ(verdicts[1].dir, METRIC_INGRESS);
  EXPECT_EQ(verdicts[1].source, b_.id);

  // Egress allows 81, b's ingress does not: dropped on b's behalf, counted as ingress.
  uint64_t before = metric(DROP_POLICY, METRIC_INGRESS);
  r = fromContainer(a_, syn(81));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(metric(DROP_POLICY, METRIC_INGRESS), before + 1);
  evs = events();
  auto drops = ofType(evs, EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u) << describe(evs);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(drops[0].source, b_.id);
  EXPECT_EQ(drops[0].dir, METRIC_INGRESS);
  EXPECT_EQ(drops[0].src_identity, kIdentityA);
  EXPECT_EQ(drops[0].dst_identity, kIdentityB);

  // Egress does not allow 82: dropped on a's behalf before b is considered.
  r = fromContainer(a_, syn(82));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].source, a_.id);
  EXPECT_EQ(drops[0].dir, METRIC_EGRESS);
}

TEST_F(LxcPolicyTest, VerdictsOnlyWherePolicyIsEnforced) {
  // The maps as the agent's policy engine computes them: with no rule, neither a nor b is
  // selected, and their default allows report no verdict (as Cilium: verdicts only where policy
  // is enforced).
  TempDir dir;
  auto ids = identity::Allocator::open(dir.path() + "/ids");
  ASSERT_TRUE(ids.ok()) << ids.error().toString();
  policy::Engine engine(**ids);
  auto subject = [](const TestEndpoint& ep, const std::string& app) {
    auto l = labels::Labels::parse({"k8s:app=" + app, "k8s:io.kubernetes.pod.namespace=default"});
    EXPECT_TRUE(l.ok());
    return policy::Subject{ep.id, ep.identity, l.ok() ? *l : labels::Labels{}, {}};
  };
  auto program = [&](const TestEndpoint& ep, const std::string& app) {
    auto p = engine.resolve(subject(ep, app));
    ASSERT_TRUE(p.ok()) << p.error().toString();
    setPolicy(ep, p->entries);
  };
  auto syn = [&] {
    return from(a_).ipv4(a_.pod.ip, b_.pod.ip).tcp(next_sport_++, 80, tcp::kSyn).build();
  };
  program(a_, "a");
  program(b_, "b");
  events();
  EXPECT_EQ(fromContainer(a_, syn()).retval, TC_ACT_REDIRECT);
  EXPECT_EQ(fromContainer(a_, from(a_).ipv4(a_.pod.ip, kWorld).udp(41000, 53).build()).retval,
            TC_ACT_OK);
  auto evs = events();
  EXPECT_TRUE(ofType(evs, EVENT_POLICY_VERDICT).empty()) << describe(evs);
  EXPECT_FALSE(ofType(evs, EVENT_TRACE).empty()) << "the packets are still traced";

  // A rule selects b's ingress (allowing everyone): b reports verdicts, a still does not.
  auto imp = engine.import(
      "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: b-in\n"
      "  namespace: default\nspec:\n  endpointSelector: {matchLabels: {app: b}}\n"
      "  ingress: [{fromEntities: [all]}]\n");
  ASSERT_TRUE(imp.ok()) << imp.error().toString();
  program(b_, "b");
  events();
  EXPECT_EQ(fromContainer(a_, syn()).retval, TC_ACT_REDIRECT);
  evs = events();
  auto verdicts = ofType(evs, EVENT_POLICY_VERDICT);
  ASSERT_EQ(verdicts.size(), 1u) << describe(evs);
  EXPECT_EQ(verdicts[0].source, b_.id);
  EXPECT_EQ(verdicts[0].dir, METRIC_INGRESS);
  EXPECT_EQ(verdicts[0].verdict, 0);
}

TEST_F(LxcPolicyTest, RevokingAPolicyCutsEstablishedConnections) {
  setPolicy(a_, {allowEntry(2001, E, kTcp, 80, 16)});
  auto pkt = [&](uint8_t flags) {
    return from(a_).ipv4(a_.pod.ip, R1).tcp(40000, 80, flags).build();
  };
  ASSERT_EQ(fromContainer(a_, pkt(tcp::kSyn)).retval, TC_ACT_OK);
  ASSERT_EQ(fromContainer(a_, pkt(tcp::kAck)).retval, TC_ACT_OK);
  events();

  // The new policy is in the map, but established packets keep their cached verdict until the
  // revision moves (the agent bumps it after every change).
  ASSERT_TRUE(maps().policy->replace(a_.id, {}).ok());
  EXPECT_EQ(fromContainer(a_, pkt(tcp::kAck)).retval, TC_ACT_OK);
  bumpRevision();
  EXPECT_EQ(fromContainer(a_, pkt(tcp::kAck)).retval, TC_ACT_SHOT);
  auto evs = events();
  auto drops = ofType(evs, EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u) << describe(evs);
  EXPECT_EQ(drops[0].subtype, DROP_POLICY);
  EXPECT_EQ(drops[0].ct_state, CT_ESTABLISHED);

  // Allowed again: the entry is still there and the connection resumes without a new verdict
  // event (only denies and new connections report one).
  setPolicy(a_, {allowEntry(2001, E, kTcp, 80, 16)});
  EXPECT_EQ(fromContainer(a_, pkt(tcp::kAck)).retval, TC_ACT_OK);
  EXPECT_TRUE(ofType(events(), EVENT_POLICY_VERDICT).empty());
  auto entry = ctEntry(a_.pod.ip.c_str(), R1, 40000, 80, kTcp, CT_KEY_EGRESS);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->policy_rev, *maps().runtime_config->lookup(RUNTIME_POLICY_REV).value());
}

TEST_F(LxcPolicyTest, UnknownDeviceAndMissingPolicyMapFailClosed) {
  auto pkt = from(c_).ipv4(c_.pod.ip, R1).udp(1000, 53).build();
  // c's device is in no map.
  EXPECT_EQ(fromContainer(c_, pkt).retval, TC_ACT_SHOT);
  EXPECT_EQ(toContainer(c_, to(c_).ipv4(R1, c_.pod.ip).udp(53, 1000).build()).retval, TC_ACT_SHOT);
  auto drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0].subtype, DROP_EP_NOT_READY);
  EXPECT_EQ(drops[1].subtype, DROP_EP_NOT_READY);
  EXPECT_EQ(metric(DROP_EP_NOT_READY, METRIC_EGRESS), 1u);
  EXPECT_EQ(metric(DROP_EP_NOT_READY, METRIC_INGRESS), 1u);

  // Known, but without a policy map yet.
  addEndpoint(c_, /*with_policy_map=*/false);
  EXPECT_EQ(fromContainer(c_, pkt).retval, TC_ACT_SHOT);
  drops = ofType(events(), EVENT_DROP);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(drops[0].subtype, DROP_EP_NOT_READY);
  EXPECT_EQ(drops[0].source, c_.id);

  setPolicy(c_, {allowEntry(0, E)});
  EXPECT_EQ(fromContainer(c_, pkt).retval, TC_ACT_OK);
  // Removing the map (endpoint going away) fails closed again for new connections.
  ASSERT_TRUE(maps().policy->remove(c_.id).ok());
  bumpRevision();
  EXPECT_EQ(fromContainer(c_, from(c_).ipv4(c_.pod.ip, R1).udp(1001, 53).build()).retval,
            TC_ACT_SHOT);
}

TEST_F(LxcPolicyTest, PolicyMapsUpdateDumpAndRejectBadEntries) {
  auto* pm = maps().policy;
  setPolicy(a_, {allowEntry(2001, E, kTcp, 80, 16)});
  auto syn = [&](uint16_t port) {
    return from(a_).ipv4(a_.pod.ip, R1).tcp(next_sport_++, port, tcp::kSyn).build();
  };
  EXPECT_EQ(fromContainer(a_, syn(81)).retval, TC_ACT_SHOT);

  // In place: add 81, remove 80.
  std::vector<datapath::PolicyEntry> add{allowEntry(2001, E, kTcp, 81, 16)};
  std::vector<policy_key> del{datapath::policyKey(2001, E, kTcp, 80, 16)};
  ASSERT_TRUE(pm->update(a_.id, add, del).ok());
  bumpRevision();
  EXPECT_EQ(fromContainer(a_, syn(81)).retval, TC_ACT_OK);
  EXPECT_EQ(fromContainer(a_, syn(80)).retval, TC_ACT_SHOT);

  auto dump = pm->dump(a_.id);
  ASSERT_TRUE(dump.ok());
  ASSERT_EQ(dump->size(), 1u);
  EXPECT_EQ(ntohs((*dump)[0].key.dport), 81);
  EXPECT_EQ((*dump)[0].value.prefix_len, POLICY_PREFIX_FULL) << "prefix_len is filled in";

  auto eps = pm->endpoints();
  ASSERT_TRUE(eps.ok());
  EXPECT_EQ(*eps, (std::vector<uint16_t>{a_.id, b_.id}));
  EXPECT_EQ(pm->update(77, add, {}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(pm->dump(77).error().code(), ErrorCode::kNotFound);

  // Bad input never replaces what is in force.
  datapath::PolicyEntry bad = allowEntry(2001, E, kTcp, 80, 16);
  bad.key.prefixlen = 70;
  std::vector<datapath::PolicyEntry> bad_set{allowEntry(0, E), bad};
  auto s = pm->replace(a_.id, bad_set);
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  bad = allowEntry(2001, E, kTcp, 80, 16);
  bad.key.dport = htons(81);
  bad.key.prefixlen = POLICY_PREFIX_ANY_PORT + 8;  // port bits beyond the prefix
  EXPECT_EQ(pm->update(a_.id, std::vector{bad}, {}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pm->dump(a_.id)->size(), 1u);
  EXPECT_EQ(fromContainer(a_, syn(81)).retval, TC_ACT_OK);

  // A replace larger than the inner map is refused whole.
  std::vector<datapath::PolicyEntry> huge;
  for (uint32_t i = 0; i < CILIUM_POLICY_MAP_SIZE + 1; i++)
    huge.push_back(allowEntry(100000 + i, E));
  EXPECT_EQ(pm->replace(a_.id, huge).error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(pm->dump(a_.id)->size(), 1u);
}

// Packets racing with replace() see the old or the new set, never a mix: the sets below give
// 2001:80 the verdicts "denied by denylist" and "allowed"; any partial state would give
// DROP_POLICY (nothing matches) at some point.
TEST_F(LxcPolicyTest, ReplaceIsAtomicForPacketsInFlight) {
  std::vector<datapath::PolicyEntry> deny_set{
      allowEntry(0, E, kTcp, 80, 16), denyEntry(2001, E, kTcp, 80, 16), allowEntry(0, E, kUdp)};
  std::vector<datapath::PolicyEntry> allow_set{allowEntry(2001, E, kTcp, 80, 16),
                                               allowEntry(2001, E, kUdp)};
  setPolicy(a_, deny_set);
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread writer([&] {
    for (int i = 0; !stop; i++) {
      ASSERT_TRUE(maps().policy->replace(a_.id, i % 2 ? deny_set : allow_set).ok());
      swaps++;
    }
  });
  std::map<int, int> seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline && swaps < 2000) {
    auto pkt = from(a_).ipv4(a_.pod.ip, R1).tcp(next_sport_++, 80, tcp::kSyn).build();
    if (next_sport_ == 0) next_sport_ = 1024;
    fromContainer(a_, pkt);
    for (const auto& ev : ofType(events(), EVENT_POLICY_VERDICT)) seen[-ev.verdict]++;
  }
  stop = true;
  writer.join();
  RecordProperty("swaps", swaps.load());
  RecordProperty("allowed", seen[0]);
  RecordProperty("denied", seen[DROP_POLICY_DENY]);
  EXPECT_EQ(seen.count(DROP_POLICY), 0u) << "a packet saw a partial policy";
  EXPECT_GT(seen[0] + seen[DROP_POLICY_DENY], 0);
  EXPECT_GT(swaps.load(), 10);
}

// replace() keeps the inner map when the set is unchanged or can change in place, swaps it when
// the wildcard and an identity move in opposite senses, and the datapath enforces the result.
TEST_F(LxcPolicyTest, ReplaceKeepsTheInnerMapUnlessItMustSwap) {
  std::vector<datapath::PolicyEntry> web{allowEntry(2001, E, kTcp, 80, 16)};
  setPolicy(a_, web);
  uint32_t id = innerMapId(a_.id);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(maps().policy->replace(a_.id, web).ok());
  EXPECT_EQ(innerMapId(a_.id), id) << "unchanged: the same inner map";

  // Another port and a deny for the same identity: in place.
  std::vector<datapath::PolicyEntry> changed{allowEntry(2001, E, kTcp, 443, 16),
                                             allowEntry(2001, E, kUdp),
                                             denyEntry(2001, E, kUdp, 53, 16)};
  ASSERT_TRUE(maps().policy->replace(a_.id, changed).ok());
  bumpRevision();
  EXPECT_EQ(innerMapId(a_.id), id) << "patched in place";
  EXPECT_EQ(verdict(80), DROP_POLICY);
  EXPECT_EQ(verdict(443), 0);
  EXPECT_EQ(verdict(53, kUdp), DROP_POLICY_DENY);
  EXPECT_EQ(verdict(54, kUdp), 0);
  auto dump = maps().policy->dump(a_.id);
  ASSERT_TRUE(dump.ok());
  EXPECT_EQ(dump->size(), 3u);

  // Default allow (the wildcard) instead of per-identity allows: opposite senses, a swap.
  ASSERT_TRUE(maps().policy->replace(a_.id, std::vector{allowEntry(0, E)}).ok());
  bumpRevision();
  EXPECT_NE(innerMapId(a_.id), id) << "swapped";
  EXPECT_EQ(verdict(53, kUdp), 0);
  EXPECT_EQ(maps().policy->dump(a_.id)->size(), 1u);

  // Many endpoints at once: the swaps go in with one batched update; each is enforced.
  setPolicy(b_, {allowEntry(0, E)});
  uint32_t a_map = innerMapId(a_.id), b_map = innerMapId(b_.id);
  std::vector<datapath::PolicyEntry> locked{allowEntry(2002, E, kTcp, 80, 16)};
  std::vector<datapath::PolicyReplacement> both{{a_.id, locked}, {b_.id, locked}};
  auto results = maps().policy->replaceMany(both);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok() && results[1].ok());
  bumpRevision();
  EXPECT_NE(innerMapId(a_.id), a_map);
  EXPECT_NE(innerMapId(b_.id), b_map);
  EXPECT_EQ(verdict(80), DROP_POLICY) << "2001 is no longer allowed";
  EXPECT_EQ(maps().policy->dump(b_.id)->size(), 1u);
}

// Packets racing with in-place changes never get through where neither set lets them, and are
// never dropped where both let them: set A allows TCP from 2001 but denies port 80; set B allows
// only 443/TCP and UDP. Port 80 must never pass, port 443 must always pass, on every packet,
// while a writer flips between the two without swapping the inner map.
TEST_F(LxcPolicyTest, InPlaceChangesNeverWidenForPacketsInFlight) {
  std::vector<datapath::PolicyEntry> set_a{allowEntry(2001, E, kTcp),
                                           denyEntry(2001, E, kTcp, 80, 16)};
  std::vector<datapath::PolicyEntry> set_b{allowEntry(2001, E, kTcp, 443, 16),
                                           allowEntry(2001, E, kUdp)};
  setPolicy(a_, set_a);
  uint32_t id = innerMapId(a_.id);
  std::atomic<bool> stop{false};
  std::atomic<int> flips{0};
  std::thread writer([&] {
    for (int i = 0; !stop; i++) {
      ASSERT_TRUE(maps().policy->replace(a_.id, i % 2 ? set_a : set_b).ok());
      flips++;
    }
  });
  std::map<int, int> port80, port443;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline && flips < 20000) {
    port80[verdict(80)]++;
    port443[verdict(443)]++;
  }
  stop = true;
  writer.join();
  RecordProperty("flips", flips.load());
  EXPECT_EQ(innerMapId(a_.id), id) << "every flip was in place";
  EXPECT_EQ(port80.count(0), 0u) << "port 80 got through during a change";
  EXPECT_EQ(port443.size(), 1u) << "port 443 was dropped during a change";
  EXPECT_EQ(port443.count(0), 1u);
  EXPECT_GT(port80[DROP_POLICY] + port80[DROP_POLICY_DENY], 0);
  EXPECT_GT(flips.load(), 100);
}

}  // namespace
}  // namespace cilium::testing
