#include "tests/bpf/lxc_fixture.h"

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "agent/common/inet.h"
#include "agent/common/netns.h"
#include "tests/harness/endpoints.h"

namespace cilium::testing {
namespace {

datapath::PolicyEntry entry(uint32_t identity, uint8_t dir, uint8_t proto, uint16_t port,
                            uint8_t bits, bool deny) {
  datapath::PolicyEntry e;
  e.key = datapath::policyKey(identity, dir, proto, port, proto == 0 ? 0 : bits);
  e.value.flags = deny ? POLICY_F_DENY : 0;
  return e;
}

}  // namespace

std::string LxcTest::tupleAddr(const event_tuple& t, bool source) {
  const v4v6_addr& a = source ? t.saddr : t.daddr;
  if (t.family == ENDPOINT_KEY_IPV6) return IpAddr::fromBytes(IpFamily::kV6, a.ip6).toString();
  return IpAddr::fromNetworkOrder(a.ip4).toString();
}

datapath::PolicyEntry allowEntry(uint32_t identity, uint8_t dir, uint8_t proto, uint16_t port,
                                 uint8_t bits) {
  return entry(identity, dir, proto, port, bits, false);
}

datapath::PolicyEntry denyEntry(uint32_t identity, uint8_t dir, uint8_t proto, uint16_t port,
                                uint8_t bits) {
  return entry(identity, dir, proto, port, bits, true);
}

void LxcTest::setUpWith(datapath::Config cfg) {
  auto topo = Topology::create();
  ASSERT_TRUE(topo.ok()) << topo.error().toString();
  topo_ = std::move(*topo);
  struct Spec {
    TestEndpoint* ep;
    const char* name;
    const char* ip;
    uint16_t id;
    uint32_t identity;
  } specs[] = {{&a_, "a", "10.200.0.11", 11, kIdentityA},
               {&b_, "b", "10.200.0.12", 12, kIdentityB},
               {&c_, "c", "10.200.0.13", 13, kIdentityC}};
  for (auto& s : specs) {
    auto pod = topo_->addPod(s.name, s.ip);
    ASSERT_TRUE(pod.ok()) << pod.error().toString();
    s.ep->pod = *pod;
    if (dual_stack_) s.ep->pod.ip6 = v6Twin(s.ip);
    s.ep->id = s.id;
    s.ep->identity = s.identity;
    s.ep->mac = mac(pod->mac);
    s.ep->host_mac = mac(pod->host_mac);
  }
  auto pin = topo_->pinDir();
  ASSERT_TRUE(pin.ok()) << pin.error().toString();
  cfg.pin_dir = *pin;
  reload(cfg);
  ASSERT_TRUE(dp_);

  addEndpoint(a_);
  addEndpoint(b_);
  setIpcache(kRemote1, 32, kRemoteId1);
  setIpcache(kRemote2, 32, kRemoteId2);
  auto s = programNode(maps(), topo_->routerIp());
  ASSERT_TRUE(s.ok()) << s.error().toString();
  if (dual_stack_) {
    setIpcache(v6Twin(kRemote1), 128, kRemoteId1);
    setIpcache(v6Twin(kRemote2), 128, kRemoteId2);
    setIpcache(v6Twin(topo_->routerIp()), 128, IDENTITY_HOST);
  }
}

void LxcTest::reload(const datapath::Config& config) {
  datapath::Config cfg = config;  // callers pass dp_->config(), which goes away below
  reader_.reset();
  dp_.reset();
  auto dp = datapath::Datapath::load(cfg);
  ASSERT_TRUE(dp.ok()) << dp.error().toString();
  dp_ = std::move(*dp);
  auto reader = dp_->openEventReader([this](const cilium_event& ev) { pending_.push_back(ev); });
  ASSERT_TRUE(reader.ok()) << reader.error().toString();
  reader_ = std::move(*reader);
}

void LxcTest::addEndpoint(TestEndpoint& ep, bool with_policy_map) {
  auto s = programEndpoint(maps(), ep.pod, ep.id, ep.identity);
  ASSERT_TRUE(s.ok()) << s.error().toString();
  if (with_policy_map) setPolicy(ep, {});
}

void LxcTest::setIpcache(const std::string& ip, uint8_t prefix_len, uint32_t identity) {
  remote_endpoint_info info{};
  info.sec_identity = identity;
  auto addr = IpAddr::parse(ip);
  ASSERT_TRUE(addr.ok()) << ip;
  ASSERT_TRUE(maps().ipcache->update(datapath::ipcacheKey(IpPrefix(*addr, prefix_len)), info).ok());
}

void LxcTest::setPolicy(const TestEndpoint& ep, const std::vector<datapath::PolicyEntry>& entries) {
  auto s = maps().policy->replace(ep.id, entries);
  ASSERT_TRUE(s.ok()) << s.error().toString();
  bumpRevision();
}

void LxcTest::bumpRevision() {
  auto s = datapath::bumpPolicyRevision(*maps().runtime_config);
  ASSERT_TRUE(s.ok()) << s.error().toString();
}

bpf::TestRunResult LxcTest::run(const bpf_program* prog, const TestEndpoint& ep,
                                const std::vector<uint8_t>& packet, uint32_t mark) {
  __sk_buff ctx{};
  ctx.ifindex = static_cast<uint32_t>(ep.pod.host_ifindex);
  ctx.mark = mark;
  // The kernel resolves ctx.ifindex in the caller's namespace: run where the veth lives.
  auto r = runInNetnsValue<bpf::TestRunResult>(
      topo_->nodeNetns(), [&] { return bpf::testRun(prog, packet, {.repeat = 1, .ctx = ctx}); });
  EXPECT_TRUE(r.ok()) << r.error().toString();
  return r.ok() ? *r : bpf::TestRunResult{.retval = -1};
}

PacketBuilder LxcTest::from(const TestEndpoint& ep) const {
  PacketBuilder b;
  b.eth(ep.mac, ep.host_mac);
  return b;
}

PacketBuilder LxcTest::to(const TestEndpoint& ep) const {
  PacketBuilder b;
  b.eth(ep.host_mac, ep.mac);
  return b;
}

std::vector<cilium_event> LxcTest::events() {
  auto n = reader_->consume();
  EXPECT_TRUE(n.ok()) << n.error().toString();
  std::vector<cilium_event> out;
  out.swap(pending_);
  return out;
}

std::vector<cilium_event> LxcTest::ofType(const std::vector<cilium_event>& evs, uint8_t type) {
  std::vector<cilium_event> out;
  for (const auto& e : evs)
    if (e.type == type) out.push_back(e);
  return out;
}

std::string LxcTest::describe(const std::vector<cilium_event>& evs) {
  std::string s;
  for (const auto& e : evs) s += "\n  " + datapath::formatEvent(e);
  return s.empty() ? " (no events)" : s;
}

uint64_t LxcTest::metric(uint8_t reason, uint8_t dir) {
  auto all = dp_->readMetrics();
  EXPECT_TRUE(all.ok());
  if (!all.ok()) return 0;
  for (const auto& e : *all)
    if (e.reason == reason && e.dir == dir) return e.packets;
  return 0;
}

std::optional<ct_entry> LxcTest::ctEntry(const std::string& saddr, const std::string& daddr,
                                         uint16_t sport, uint16_t dport, uint8_t proto,
                                         uint8_t dir) {
  auto s = IpAddr::parse(saddr), d = IpAddr::parse(daddr);
  EXPECT_TRUE(s.ok() && d.ok() && s->family() == d->family()) << saddr << " " << daddr;
  if (!s.ok() || !d.ok()) return std::nullopt;
  // The same lookup in the family's own map pair.
  auto lookup = [&](auto& key, auto* tcp, auto* any) -> std::optional<ct_entry> {
    key.sport = htons(sport);
    key.dport = htons(dport);
    key.nexthdr = proto;
    key.flags = dir;
    auto r = (proto == 6 ? tcp : any)->lookup(key);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  };
  if (s->isV4()) {
    ct_key4 k{};
    k.saddr = s->v4NetworkOrder();
    k.daddr = d->v4NetworkOrder();
    return lookup(k, maps().ct_tcp, maps().ct_any);
  }
  ct_key6 k{};
  std::memcpy(k.saddr.ip6, s->bytes().data(), sizeof(k.saddr.ip6));
  std::memcpy(k.daddr.ip6, d->bytes().data(), sizeof(k.daddr.ip6));
  return lookup(k, maps().ct6_tcp, maps().ct6_any);
}

}  // namespace cilium::testing
