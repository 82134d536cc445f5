// The service manager against fake maps that check, at every single map write, what a datapath
// reading concurrently would see: a frontend never points at a missing slot or backend.
#include <arpa/inet.h>

#include <set>

#include <gtest/gtest.h>

#include "agent/bpf/fake_map.h"
#include "agent/service/service.h"

namespace cilium::service {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

// The four LB maps, with a check run after every write and delete.
struct CheckedMaps {
  bpf::FakeMap<lb4_key, lb4_service> services{"cilium_lb4_services", 1 << 20};
  bpf::FakeMap<lb4_slot_key, uint32_t> slots{"cilium_lb4_slots", 1 << 20};
  bpf::FakeMap<uint32_t, lb4_backend> backends{"cilium_lb4_backends", 1 << 20};
  bpf::FakeMap<uint32_t, lb4_reverse_nat> revnat{"cilium_lb4_reverse_nat", 1 << 20};
  bpf::FakeMap<lb6_key, lb4_service> services6{"cilium_lb6_services", 1 << 20};
  bpf::FakeMap<uint32_t, lb6_backend> backends6{"cilium_lb6_backends", 1 << 20};
  bpf::FakeMap<uint32_t, lb6_reverse_nat> revnat6{"cilium_lb6_reverse_nat", 1 << 20};

  ServiceMaps view() {
    ServiceMaps m{&services, &slots, &backends, &revnat};
    m.services6 = &services6;
    m.backends6 = &backends6;
    m.revnat6 = &revnat6;
    return m;
  }

  // Every frontend's slots 1..count exist under its generation and name an existing backend
  // of the frontend's own family, and its reverse NAT entry exists.
  template <typename RevNat, typename Backends>
  void check(const lb4_service& v, uint16_t port, const RevNat& rn, const Backends& bes,
             std::vector<std::string>& out) {
    if (!rn.lookup(v.rev_nat_index)->has_value())
      out.push_back("no revnat for " + std::to_string(v.rev_nat_index));
    for (uint16_t s = 1; s <= v.count; s++) {
      auto id = slots.lookup(lb4_slot_key{v.rev_nat_index, v.gen, s});
      if (!id->has_value()) {
        out.push_back("frontend port " + std::to_string(port) + " slot " + std::to_string(s) +
                      " missing");
        continue;
      }
      if (!bes.lookup(**id)->has_value())
        out.push_back("backend " + std::to_string(**id) + " missing");
    }
  }
  std::vector<std::string> violations() {
    std::vector<std::string> out;
    (void)services.forEach([&](const lb4_key& k, const lb4_service& v) {
      check(v, ntohs(k.dport), revnat, backends, out);
      return true;
    });
    (void)services6.forEach([&](const lb6_key& k, const lb4_service& v) {
      check(v, ntohs(k.dport), revnat6, backends6, out);
      return true;
    });
    return out;
  }
};

// A services map that checks the invariant of CheckedMaps whenever a frontend is written, as
// if a packet looked it up right then.
class FlipCheckingServices final : public bpf::Map<lb4_key, lb4_service> {
 public:
  explicit FlipCheckingServices(CheckedMaps* m) : m_(m) {}
  const std::string& name() const override { return m_->services.name(); }
  uint32_t maxEntries() const override { return m_->services.maxEntries(); }
  Result<std::optional<lb4_service>> lookup(const lb4_key& k) const override {
    return m_->services.lookup(k);
  }
  Status update(const lb4_key& k, const lb4_service& v, bpf::UpdateFlag f) override {
    auto st = m_->services.update(k, v, f);
    for (auto& s : m_->violations()) seen.push_back(s);
    return st;
  }
  Result<bool> remove(const lb4_key& k) override { return m_->services.remove(k); }
  Status forEach(const std::function<bool(const lb4_key&, const lb4_service&)>& fn) const override {
    return m_->services.forEach(fn);
  }
  std::vector<std::string> seen;

 private:
  CheckedMaps* m_;
};

// A slots map that checks, before each delete, that no frontend points at the slot.
class DeleteCheckingSlots final : public bpf::Map<lb4_slot_key, uint32_t> {
 public:
  explicit DeleteCheckingSlots(CheckedMaps* m) : m_(m) {}
  const std::string& name() const override { return m_->slots.name(); }
  uint32_t maxEntries() const override { return m_->slots.maxEntries(); }
  Result<std::optional<uint32_t>> lookup(const lb4_slot_key& k) const override {
    return m_->slots.lookup(k);
  }
  Status update(const lb4_slot_key& k, const uint32_t& v, bpf::UpdateFlag f) override {
    return m_->slots.update(k, v, f);
  }
  Result<bool> remove(const lb4_slot_key& k) override {
    (void)m_->services.forEach([&](const lb4_key&, const lb4_service& v) {
      if (v.rev_nat_index == k.rev_nat_index && v.gen == k.gen && k.slot <= v.count)
        seen.push_back("slot in use deleted");
      return true;
    });
    return m_->slots.remove(k);
  }
  Status forEach(
      const std::function<bool(const lb4_slot_key&, const uint32_t&)>& fn) const override {
    return m_->slots.forEach(fn);
  }
  std::vector<std::string> seen;

 private:
  CheckedMaps* m_;
};

Backend be(const char* addr, uint16_t port, BackendState st = BackendState::kActive,
           bool local = false) {
  return Backend{ip(addr), port, st, local};
}

Service web(std::vector<Backend> backends) {
  Service s;
  s.name = {"default", "web"};
  s.cluster_ip = ip("10.96.0.10");
  ServicePort p;
  p.name = "http";
  p.port = 80;
  p.backends = std::move(backends);
  s.ports.push_back(p);
  return s;
}

class ManagerTest : public ::testing::Test {
 protected:
  ServiceMaps maps() {
    auto v = m_.view();
    v.services = &services_;
    v.slots = &slots_;
    return v;
  }
  // Backend addresses (host order port) the frontend's current slots hold.
  std::multiset<std::string> slotBackends(const char* vip, uint16_t port) {
    std::multiset<std::string> out;
    lb4_key k{};
    k.address = ip(vip).v4NetworkOrder();
    k.dport = htons(port);
    k.proto = 6;
    auto fe = m_.services.lookup(k);
    if (!fe->has_value()) return out;
    for (uint16_t s = 1; s <= (*fe)->count; s++) {
      auto id = m_.slots.lookup(lb4_slot_key{(*fe)->rev_nat_index, (*fe)->gen, s});
      auto b = m_.backends.lookup(**id);
      out.insert(IpAddr::fromHostOrder(ntohl((*b)->address)).toString() + ":" +
                 std::to_string(ntohs((*b)->port)));
    }
    return out;
  }
  void TearDown() override {
    EXPECT_TRUE(services_.seen.empty()) << services_.seen.front();
    EXPECT_TRUE(slots_.seen.empty()) << slots_.seen.front();
    EXPECT_TRUE(m_.violations().empty());
  }

  CheckedMaps m_;
  FlipCheckingServices services_{&m_};
  DeleteCheckingSlots slots_{&m_};
  Manager mgr_{maps(), ManagerConfig{{ip("192.168.1.10")}}};
};

TEST_F(ManagerTest, ClusterIpProgramsFrontendSlotsBackendsAndRevNat) {
  ASSERT_TRUE(mgr_.upsertService(web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)})).ok());
  EXPECT_EQ(slotBackends("10.96.0.10", 80),
            (std::multiset<std::string>{"10.0.1.1:8080", "10.0.1.2:8080"}));
  auto list = mgr_.list();
  ASSERT_EQ(list.size(), 1u);
  auto rn = m_.revnat.lookup(list[0].id);
  ASSERT_TRUE(rn->has_value());
  EXPECT_EQ(IpAddr::fromHostOrder(ntohl((*rn)->address)).toString(), "10.96.0.10");
  EXPECT_EQ(ntohs((*rn)->port), 80);
  EXPECT_EQ(*m_.backends.count(), 2u);
}

TEST_F(ManagerTest, BackendReplacementFlipsGenerationAndRemovesOldSlots) {
  ASSERT_TRUE(mgr_.upsertService(web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)})).ok());
  ASSERT_TRUE(
      mgr_.upsertService(web({be("10.0.1.3", 8080), be("10.0.1.4", 8080), be("10.0.1.5", 8080)}))
          .ok());
  EXPECT_EQ(slotBackends("10.96.0.10", 80),
            (std::multiset<std::string>{"10.0.1.3:8080", "10.0.1.4:8080", "10.0.1.5:8080"}));
  // Only the new generation's slots and the backends in use remain.
  EXPECT_EQ(*m_.slots.count(), 3u);
  EXPECT_EQ(*m_.backends.count(), 3u);
  // The id stays the same: connections' reverse NAT keeps working.
  EXPECT_EQ(mgr_.list().at(0).id, 1u);
}

TEST_F(ManagerTest, TerminatingBackendStaysForExistingConnectionsButGetsNoSlot) {
  ASSERT_TRUE(mgr_.upsertService(web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)})).ok());
  ASSERT_TRUE(mgr_.upsertService(
                      web({be("10.0.1.1", 8080), be("10.0.1.2", 8080, BackendState::kTerminating)}))
                  .ok());
  EXPECT_EQ(slotBackends("10.96.0.10", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
  bool terminating_present = false;
  (void)m_.backends.forEach([&](const uint32_t&, const lb4_backend& b) {
    if (IpAddr::fromHostOrder(ntohl(b.address)).toString() == "10.0.1.2" && b.state == LB_BACKEND_TERMINATING)
      terminating_present = true;
    return true;
  });
  EXPECT_TRUE(terminating_present);
}

TEST_F(ManagerTest, NoBackendsKeepsFrontendWithZeroCount) {
  ASSERT_TRUE(mgr_.upsertService(web({})).ok());
  lb4_key k = frontendKey({ip("10.96.0.10"), 80, Protocol::kTcp});
  auto fe = m_.services.lookup(k);
  ASSERT_TRUE(fe->has_value());  // present, so the datapath rejects instead of passing through
  EXPECT_EQ((*fe)->count, 0);
}

TEST_F(ManagerTest, NodePortExternalIpLoadBalancerAndLocalPolicy) {
  Service s = web({be("10.0.1.1", 8080, BackendState::kActive, true), be("10.0.2.1", 8080)});
  s.external_ips = {ip("203.0.113.5")};
  s.load_balancer_ips = {ip("198.51.100.7")};
  s.ports[0].node_port = 30080;
  s.ext_traffic_policy = TrafficPolicy::kLocal;
  s.session_affinity = true;
  s.affinity_timeout = 300;
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  EXPECT_EQ(mgr_.frontendCount(), 4u);
  // ClusterIP keeps every backend; external frontends only the local one.
  EXPECT_EQ(slotBackends("10.96.0.10", 80).size(), 2u);
  EXPECT_EQ(slotBackends("192.168.1.10", 30080), (std::multiset<std::string>{"10.0.1.1:8080"}));
  EXPECT_EQ(slotBackends("203.0.113.5", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
  auto np = m_.services.lookup(frontendKey({ip("192.168.1.10"), 30080, Protocol::kTcp}));
  EXPECT_EQ((*np)->flags, SVC_F_NODEPORT | SVC_F_EXT_LOCAL | SVC_F_AFFINITY);
  EXPECT_EQ((*np)->affinity_timeout, 300u);
  auto lb = m_.services.lookup(frontendKey({ip("198.51.100.7"), 80, Protocol::kTcp}));
  EXPECT_TRUE((*lb)->flags & SVC_F_LOADBALANCER);
  // Dropping the externalIP deletes that frontend only.
  s.external_ips.clear();
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  EXPECT_EQ(mgr_.frontendCount(), 3u);
  EXPECT_FALSE(
      m_.services.lookup(frontendKey({ip("203.0.113.5"), 80, Protocol::kTcp}))->has_value());
}

TEST_F(ManagerTest, LocalPolicyKeepsAnInternalScopeWithEveryBackend) {
  Service s = web({be("10.0.1.1", 8080, BackendState::kActive, true), be("10.0.2.1", 8080)});
  s.ports[0].node_port = 30080;
  s.ext_traffic_policy = TrafficPolicy::kLocal;
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  Frontend np{ip("192.168.1.10"), 30080, Protocol::kTcp};
  auto ext = m_.services.lookup(frontendKey(np));
  auto in = m_.services.lookup(internalFrontendKey(np));
  ASSERT_TRUE(ext->has_value() && in->has_value());
  EXPECT_EQ((*ext)->count, 1);
  EXPECT_EQ((*ext)->flags2, SVC_F2_TWO_SCOPES);
  EXPECT_EQ((*in)->count, 2) << "pods and the node still reach every backend";
  EXPECT_EQ((*in)->flags2, SVC_F2_SCOPE_INTERNAL);
  EXPECT_EQ((*in)->rev_nat_index, (*ext)->rev_nat_index);
  EXPECT_EQ((*in)->gen, (*ext)->gen | LB_GEN_INTERNAL);
  EXPECT_EQ(mgr_.frontendCount(), 2u) << "the internal scope is not a frontend of its own";
  // ClusterIP has one scope.
  EXPECT_FALSE(
      m_.services.lookup(internalFrontendKey({ip("10.96.0.10"), 80, Protocol::kTcp}))->has_value());

  // A backend change rewrites both scopes under a new generation.
  s.ports[0].backends.push_back(be("10.0.2.2", 8080));
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  in = m_.services.lookup(internalFrontendKey(np));
  EXPECT_EQ((*in)->count, 3);

  // A restarted agent finds both scopes and the remote backends' references.
  Manager again(maps(), ManagerConfig{{ip("192.168.1.10")}});
  ASSERT_TRUE(again.restore().ok());
  EXPECT_EQ(again.frontendCount(), 2u);
  ASSERT_TRUE(again.upsertService(s).ok());
  ASSERT_TRUE(again.pruneRestored().ok());
  EXPECT_EQ(*m_.backends.count(), 3u);

  // Back to Cluster: one scope, every backend.
  s.ext_traffic_policy = TrafficPolicy::kCluster;
  ASSERT_TRUE(again.upsertService(s).ok());
  EXPECT_FALSE(m_.services.lookup(internalFrontendKey(np))->has_value());
  EXPECT_EQ(slotBackends("192.168.1.10", 30080).size(), 3u);
  EXPECT_EQ(*m_.slots.count(), 6u) << "no internal slots left behind";
  ASSERT_TRUE(again.deleteService(s.name).ok());
  EXPECT_EQ(*m_.services.count(), 0u);
  EXPECT_EQ(*m_.slots.count(), 0u);
}

TEST_F(ManagerTest, DeleteServiceRemovesEverything) {
  ASSERT_TRUE(mgr_.upsertService(web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)})).ok());
  ASSERT_TRUE(mgr_.deleteService({"default", "web"}).ok());
  EXPECT_EQ(*m_.services.count(), 0u);
  EXPECT_EQ(*m_.slots.count(), 0u);
  EXPECT_EQ(*m_.backends.count(), 0u);
  EXPECT_EQ(*m_.revnat.count(), 0u);
  EXPECT_EQ(mgr_.deleteService({"default", "web"}).error().code(), ErrorCode::kNotFound);
}

TEST_F(ManagerTest, SharedBackendSurvivesOneServiceDelete) {
  Service a = web({be("10.0.1.1", 8080)});
  Service b = web({be("10.0.1.1", 8080)});
  b.name.name = "other";
  b.cluster_ip = ip("10.96.0.11");
  ASSERT_TRUE(mgr_.upsertServices(std::vector<Service>{a, b}).ok());
  EXPECT_EQ(*m_.backends.count(), 1u);
  ASSERT_TRUE(mgr_.deleteService(a.name).ok());
  EXPECT_EQ(slotBackends("10.96.0.11", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
}

TEST_F(ManagerTest, BadInputIsRejectedAndLeavesStateInForce) {
  ASSERT_TRUE(mgr_.upsertService(web({be("10.0.1.1", 8080)})).ok());
  Service bad = web({be("10.0.1.9", 0)});
  auto st = mgr_.upsertService(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message().find("port"), std::string::npos);
  EXPECT_EQ(slotBackends("10.96.0.10", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
  // Another Service cannot take over a frontend.
  Service thief = web({be("10.0.9.9", 80)});
  thief.name.name = "thief";
  EXPECT_EQ(mgr_.upsertService(thief).error().code(), ErrorCode::kAlreadyExists);
}

TEST_F(ManagerTest, RestFrontendsWithGivenIds) {
  LbService s;
  s.id = 42;
  s.frontend = {ip("10.96.5.5"), 53, Protocol::kUdp};
  s.backends = {be("10.0.1.1", 5353)};
  auto id = mgr_.upsertFrontend(s);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, 42u);
  EXPECT_TRUE(mgr_.get(42).has_value());
  ASSERT_TRUE(mgr_.deleteFrontend(42).ok());
  EXPECT_EQ(mgr_.deleteFrontend(42).error().code(), ErrorCode::kNotFound);
}

TEST_F(ManagerTest, RestoreContinuesFromThePinnedMaps) {
  Service s = web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)});
  Service gone = web({be("10.0.3.1", 8080)});
  gone.name.name = "gone";
  gone.cluster_ip = ip("10.96.0.99");
  ASSERT_TRUE(mgr_.upsertServices(std::vector<Service>{s, gone}).ok());
  auto id_before = mgr_.list().at(0).id;

  // A new agent on the same maps.
  Manager again(maps(), ManagerConfig{});
  ASSERT_TRUE(again.restore().ok());
  EXPECT_EQ(again.frontendCount(), 2u);
  s.ports[0].backends.push_back(be("10.0.1.3", 8080));
  ASSERT_TRUE(again.upsertService(s).ok());
  EXPECT_EQ(again.list().at(0).id, id_before);
  EXPECT_EQ(slotBackends("10.96.0.10", 80).size(), 3u);
  ASSERT_TRUE(again.pruneRestored().ok());
  EXPECT_EQ(again.frontendCount(), 1u);
  EXPECT_TRUE(slotBackends("10.96.0.99", 80).empty());
  EXPECT_EQ(*m_.backends.count(), 3u);
}

// After a restart the source re-announces every Service: one whose backends did not change
// keeps its slots and generation (nothing is rewritten), one that changed gets new ones.
TEST_F(ManagerTest, ResyncAfterRestoreRewritesOnlyWhatChanged) {
  Service same = web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)});
  Service changed = web({be("10.0.2.1", 8080)});
  changed.name.name = "changed";
  changed.cluster_ip = ip("10.96.0.20");
  ASSERT_TRUE(mgr_.upsertServices(std::vector<Service>{same, changed}).ok());
  auto fe = [&](const char* vip) {
    return **m_.services.lookup(frontendKey({ip(vip), 80, Protocol::kTcp}));
  };
  uint16_t same_gen = fe("10.96.0.10").gen, changed_gen = fe("10.96.0.20").gen;

  Manager again(maps(), ManagerConfig{});
  ASSERT_TRUE(again.restore().ok());
  uint64_t slot_writes = m_.slots.updates();
  changed.ports[0].backends.push_back(be("10.0.2.2", 8080));
  ASSERT_TRUE(again.upsertServices(std::vector<Service>{same, changed}).ok());
  ASSERT_TRUE(again.pruneRestored().ok());
  EXPECT_EQ(fe("10.96.0.10").gen, same_gen);
  EXPECT_NE(fe("10.96.0.20").gen, changed_gen);
  EXPECT_EQ(m_.slots.updates() - slot_writes, 2u) << "only the changed Service's two slots";
  EXPECT_EQ(slotBackends("10.96.0.10", 80),
            (std::multiset<std::string>{"10.0.1.1:8080", "10.0.1.2:8080"}));
  EXPECT_EQ(slotBackends("10.96.0.20", 80),
            (std::multiset<std::string>{"10.0.2.1:8080", "10.0.2.2:8080"}));
  // The unchanged one is managed normally afterwards.
  same.ports[0].backends.pop_back();
  ASSERT_TRUE(again.upsertService(same).ok());
  EXPECT_EQ(slotBackends("10.96.0.10", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
  EXPECT_EQ(*m_.slots.count(), 3u) << "no old generation left behind";
}

TEST_F(ManagerTest, ManyServicesBatch) {
  std::vector<Service> svcs;
  for (int i = 0; i < 500; i++) {
    Service s = web({be("10.0.1.1", 8080), be("10.0.1.2", 8080)});
    s.name.name = "svc" + std::to_string(i);
    s.cluster_ip = IpAddr::fromHostOrder(0x0a600000u + i + 1);
    svcs.push_back(s);
  }
  ASSERT_TRUE(mgr_.upsertServices(svcs).ok());
  EXPECT_EQ(*m_.services.count(), 500u);
  EXPECT_EQ(*m_.slots.count(), 1000u);
  EXPECT_EQ(*m_.backends.count(), 2u);
}

// A sync larger than write_chunk writes the maps chunk by chunk on a second thread while it
// plans the next chunk: every frontend still finds its slots and backends at every write, and
// the maps end up exactly as the Services say, also when a Service appears twice in the sync
// (the second one, with fewer ports, wins and its dropped frontend leaves the maps).
TEST_F(ManagerTest, LargeSyncWritesInChunksWhilePlanning) {
  ManagerConfig cfg{{ip("192.168.1.10")}};
  cfg.write_chunk = 16;
  Manager mgr(maps(), cfg);
  std::vector<Service> svcs;
  for (int i = 0; i < 300; i++) {
    Service s = web({be("10.0.1.1", 8080), be("10.0.2.1", static_cast<uint16_t>(9000 + i % 7))});
    s.name.name = "svc" + std::to_string(i);
    s.cluster_ip = IpAddr::fromHostOrder(0x0a600000u + i + 1);
    s.ports[0].node_port = static_cast<uint16_t>(30000 + i);  // a second frontend each
    svcs.push_back(s);
  }
  Service again = svcs[5];
  again.ports[0].node_port = 0;
  svcs.insert(svcs.begin() + 6, again);  // in the same chunk as the first one
  ASSERT_TRUE(mgr.upsertServices(svcs).ok());
  EXPECT_EQ(*m_.services.count(), 599u);
  EXPECT_EQ(*m_.revnat.count(), 599u);
  EXPECT_EQ(*m_.slots.count(), 2 * 599u);
  EXPECT_EQ(*m_.backends.count(), 8u);
  EXPECT_EQ(mgr.frontendCount(), 599u);
  EXPECT_EQ(slotBackends("10.96.0.6", 80),
            (std::multiset<std::string>{"10.0.1.1:8080", "10.0.2.1:9005"}));

  // Changed in bulk again: every Service loses its second backend, atomically per frontend.
  for (auto& s : svcs) s.ports[0].backends.pop_back();
  ASSERT_TRUE(mgr.upsertServices(svcs).ok());
  EXPECT_EQ(*m_.services.count(), 599u);
  EXPECT_EQ(*m_.slots.count(), 599u);
  EXPECT_EQ(*m_.backends.count(), 1u);
  svcs.erase(svcs.begin() + 6);
  for (const auto& s : svcs) ASSERT_TRUE(mgr.deleteService(s.name).ok());
  EXPECT_EQ(*m_.services.count(), 0u);
  EXPECT_EQ(*m_.slots.count(), 0u);
  EXPECT_EQ(*m_.backends.count(), 0u);
  EXPECT_EQ(*m_.revnat.count(), 0u);
}

}  // namespace
}  // namespace cilium::service

namespace cilium::service {
namespace {

// The backends ("[ip]:port") the IPv6 frontend's current slots hold.
std::multiset<std::string> slotBackends6(CheckedMaps& m, const char* vip, uint16_t port) {
  std::multiset<std::string> out;
  auto fe = m.services6.lookup(frontendKey6(Frontend{ip(vip), port, Protocol::kTcp}));
  if (!fe->has_value()) return out;
  for (uint16_t s = 1; s <= (*fe)->count; s++) {
    auto id = m.slots.lookup(lb4_slot_key{(*fe)->rev_nat_index, (*fe)->gen, s});
    auto b = m.backends6.lookup(**id);
    if (!b->has_value()) {
      out.insert("<not an IPv6 backend>");
      continue;
    }
    out.insert("[" + IpAddr::fromBytes(IpFamily::kV6, (*b)->address.ip6).toString() +
               "]:" + std::to_string(ntohs((*b)->port)));
  }
  return out;
}

Service dualStack(std::vector<Backend> backends) {
  Service s = web(std::move(backends));
  s.more_cluster_ips = {ip("fd00:96::10")};
  return s;
}

TEST_F(ManagerTest, DualStackServiceGivesEachFamilyItsOwnBackends) {
  Service s = dualStack({be("10.0.1.1", 8080), be("fd00:1::1", 8080), be("fd00:1::2", 8080)});
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  EXPECT_EQ(slotBackends("10.96.0.10", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
  EXPECT_EQ(slotBackends6(m_, "fd00:96::10", 80),
            (std::multiset<std::string>{"[fd00:1::1]:8080", "[fd00:1::2]:8080"}));
  EXPECT_EQ(*m_.backends.count(), 1u);
  EXPECT_EQ(*m_.backends6.count(), 2u);
  // One id space: the two frontends and the three backends have distinct ids.
  auto list = mgr_.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_NE(list[0].id, list[1].id);
  std::set<uint32_t> backend_ids;
  (void)m_.backends.forEach([&](const uint32_t& id, const lb4_backend&) {
    backend_ids.insert(id);
    return true;
  });
  (void)m_.backends6.forEach([&](const uint32_t& id, const lb6_backend&) {
    backend_ids.insert(id);
    return true;
  });
  EXPECT_EQ(backend_ids.size(), 3u);
  const auto& v6 = list[0].frontend.ip.isV4() ? list[1] : list[0];
  auto rn = m_.revnat6.lookup(v6.id);
  ASSERT_TRUE(rn->has_value());
  EXPECT_EQ(IpAddr::fromBytes(IpFamily::kV6, (*rn)->address.ip6).toString(), "fd00:96::10");
  EXPECT_EQ(ntohs((*rn)->port), 80);

  // A backend change flips the IPv6 frontend's generation like an IPv4 one's.
  s.ports[0].backends = {be("10.0.1.1", 8080), be("fd00:1::3", 8080)};
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  EXPECT_EQ(slotBackends6(m_, "fd00:96::10", 80), (std::multiset<std::string>{"[fd00:1::3]:8080"}));
  EXPECT_EQ(*m_.backends6.count(), 1u);
  EXPECT_EQ(*m_.slots.count(), 2u);

  ASSERT_TRUE(mgr_.deleteService(s.name).ok());
  EXPECT_EQ(*m_.services6.count(), 0u);
  EXPECT_EQ(*m_.backends6.count(), 0u);
  EXPECT_EQ(*m_.revnat6.count(), 0u);
  EXPECT_EQ(*m_.slots.count(), 0u);
}

TEST_F(ManagerTest, Ipv6ExternalIpIsAFrontendAndMaglevNeedsItsMap) {
  Manager mg(maps(), [] {
    ManagerConfig c{{ip("192.168.1.10")}};
    c.algorithm = LbAlgorithm::kMaglev;
    c.maglev_table_size = 251;
    return c;
  }());
  // No Maglev map in this fixture: refused for both families alike.
  Service s = dualStack({be("fd00:1::1", 8080)});
  EXPECT_EQ(mg.upsertService(s).error().code(), ErrorCode::kFailedPrecondition);
  Service e = web({be("fd00:1::1", 8080)});
  e.cluster_ip.reset();
  e.external_ips = {ip("2001:db8::7")};
  ASSERT_TRUE(mgr_.upsertService(e).ok());
  auto fe = m_.services6.lookup(frontendKey6(Frontend{ip("2001:db8::7"), 80, Protocol::kTcp}));
  ASSERT_TRUE(fe->has_value());
  EXPECT_TRUE((*fe)->flags & SVC_F_EXTERNAL_IP);
  EXPECT_EQ((*fe)->count, 1);
}

TEST_F(ManagerTest, MixedFamiliesAreRefused) {
  LbService s;
  s.frontend = Frontend{ip("fd00:96::20"), 80, Protocol::kTcp};
  s.backends = {be("10.0.1.1", 8080)};
  auto r = mgr_.upsertFrontend(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  s.frontend = Frontend{ip("10.96.0.20"), 80, Protocol::kTcp};
  s.backends = {be("fd00:1::1", 8080)};
  EXPECT_EQ(mgr_.upsertFrontend(s).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*m_.services.count() + *m_.services6.count(), 0u);
  // Two ClusterIPs of one family are no dual-stack Service.
  Service twice = web({});
  twice.more_cluster_ips = {ip("10.96.0.11")};
  EXPECT_EQ(mgr_.upsertService(twice).error().code(), ErrorCode::kInvalidArgument);
  // A v6 frontend with only IPv4 backends gets none of them: it refuses (count 0).
  Service v6 = web({be("10.0.1.1", 8080)});
  v6.cluster_ip = ip("fd00::1");
  ASSERT_TRUE(mgr_.upsertService(v6).ok());
  auto fe = m_.services6.lookup(frontendKey6(Frontend{ip("fd00::1"), 80, Protocol::kTcp}));
  ASSERT_TRUE(fe->has_value());
  EXPECT_EQ((*fe)->count, 0);
}

TEST_F(ManagerTest, Ipv6DisabledSkipsIpv6FrontendsWithoutError) {
  ManagerConfig c{{ip("192.168.1.10")}};
  c.enable_ipv6 = false;
  Manager mg(maps(), c);
  ASSERT_TRUE(mg.upsertService(dualStack({be("10.0.1.1", 8080), be("fd00:1::1", 8080)})).ok());
  EXPECT_EQ(mg.frontendCount(), 1u);
  EXPECT_EQ(*m_.services6.count(), 0u);
  EXPECT_EQ(*m_.backends6.count(), 0u);
  EXPECT_EQ(slotBackends("10.96.0.10", 80), (std::multiset<std::string>{"10.0.1.1:8080"}));
  LbService rest;
  rest.frontend = Frontend{ip("fd00:96::20"), 80, Protocol::kTcp};
  EXPECT_EQ(mg.upsertFrontend(rest).error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(ManagerTest, Ipv6FrontendsNeedTheIpv6Maps) {
  auto v = maps();
  v.services6 = nullptr;
  Manager mg(v, ManagerConfig{{ip("192.168.1.10")}});
  EXPECT_EQ(mg.upsertService(dualStack({be("fd00:1::1", 8080)})).error().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(mg.frontendCount(), 0u);
}

TEST_F(ManagerTest, RestoreRebuildsIpv6Frontends) {
  Service s = dualStack({be("10.0.1.1", 8080), be("fd00:1::1", 8080)});
  ASSERT_TRUE(mgr_.upsertService(s).ok());
  auto before = mgr_.list();
  Manager again(maps(), ManagerConfig{{ip("192.168.1.10")}});
  ASSERT_TRUE(again.restore().ok());
  auto restored = again.list();
  ASSERT_EQ(restored.size(), 2u);
  for (size_t i = 0; i < 2; i++) {
    EXPECT_EQ(restored[i].id, before[i].id);
    EXPECT_EQ(restored[i].frontend, before[i].frontend);
    ASSERT_EQ(restored[i].backends.size(), 1u);
    EXPECT_EQ(restored[i].backends[0].ip, before[i].backends[0].ip);
  }
  // The same Service again: ids kept, nothing pruned.
  ASSERT_TRUE(again.upsertService(s).ok());
  ASSERT_TRUE(again.pruneRestored().ok());
  EXPECT_EQ(again.list().size(), 2u);
  EXPECT_EQ(again.list()[0].id, before[0].id);
  EXPECT_EQ(slotBackends6(m_, "fd00:96::10", 80), (std::multiset<std::string>{"[fd00:1::1]:8080"}));
}

}  // namespace
}  // namespace cilium::service
