// Shared fixture of the bpf_lxc tests: a node namespace with pods (for real ifindexes), the
// datapath loaded with its maps under a test pin dir, endpoints and policy programmed through
// Maps/PolicyMaps, and helpers that run a program on a crafted packet and collect its events.
#pragma once

#include <arpa/inet.h>
#include <linux/pkt_cls.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/bpf/test_run.h"
#include "agent/datapath/datapath.h"
#include "agent/datapath/monitor.h"
#include "tests/harness/family.h"
#include "tests/harness/netns.h"
#include "tests/harness/packet.h"

namespace cilium::testing {

struct TestEndpoint {
  Pod pod;
  uint16_t id = 0;
  uint32_t identity = 0;
  Mac mac{};       // pod side
  Mac host_mac{};  // host side (node_mac)
};

// Policy entry shorthands. `bits` is the port prefix length (16 = one port, 0 = any port).
datapath::PolicyEntry allowEntry(uint32_t identity, uint8_t dir, uint8_t proto = 0,
                                 uint16_t port = 0, uint8_t bits = 0);
datapath::PolicyEntry denyEntry(uint32_t identity, uint8_t dir, uint8_t proto = 0,
                                uint16_t port = 0, uint8_t bits = 0);

class LxcTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kIdentityA = 1001, kIdentityB = 1002, kIdentityC = 1003;
  // Remote (not local) pods reached through the stack, and the node.
  static constexpr const char* kRemote1 = "10.201.0.1";  // identity kRemoteId1
  static constexpr const char* kRemote2 = "10.201.0.2";  // identity kRemoteId2
  static constexpr uint32_t kRemoteId1 = 2001, kRemoteId2 = 2002;
  static constexpr const char* kWorld = "8.8.8.8";  // no ipcache entry: world

  void SetUp() override { setUpWith({}); }

  // Set before SetUp: pods and remotes get IPv6 twins of their addresses (v6Twin) too, and
  // tests speak `family_` (addr(), ipOf()).
  bool dual_stack_ = false;
  Family family_ = Family::kV4;
  // The address `v4` (one of the constants above, the router, a pod's) stands for in family_.
  std::string addr(std::string_view v4) const {
    return family_ == Family::kV6 ? v6Twin(v4) : std::string(v4);
  }
  std::string ipOf(const TestEndpoint& ep) const { return addr(ep.pod.ip); }
  uint8_t icmpProto() const { return family_ == Family::kV6 ? 58 : 1; }
  // An event tuple's address as text.
  static std::string tupleAddr(const event_tuple& t, bool source);
  // Builds the topology (pods a, b, c), loads the datapath with `cfg` (pin_dir filled in) and
  // programs endpoints a and b with default-deny policy maps, c without any map state.
  void setUpWith(datapath::Config cfg);
  // Reloads the programs with another configuration over the same pinned maps.
  void reload(const datapath::Config& cfg);

  void addEndpoint(TestEndpoint& ep, bool with_policy_map = true);
  void setIpcache(const std::string& ip, uint8_t prefix_len, uint32_t identity);
  void setPolicy(const TestEndpoint& ep, const std::vector<datapath::PolicyEntry>& entries);
  void bumpRevision();

  // `mark`: skb->mark as the program sees it (packets of the L7 proxies carry one).
  bpf::TestRunResult run(const bpf_program* prog, const TestEndpoint& ep,
                         const std::vector<uint8_t>& packet, uint32_t mark = 0);
  bpf::TestRunResult fromContainer(const TestEndpoint& ep, const std::vector<uint8_t>& packet) {
    return run(dp_->programs().from_container, ep, packet);
  }
  bpf::TestRunResult toContainer(const TestEndpoint& ep, const std::vector<uint8_t>& packet,
                                 uint32_t mark = 0) {
    return run(dp_->programs().to_container, ep, packet, mark);
  }

  // A packet as endpoint `ep` sends it (its MACs on the wire towards the host veth).
  PacketBuilder from(const TestEndpoint& ep) const;
  // A packet as the node's stack sends it towards `ep`.
  PacketBuilder to(const TestEndpoint& ep) const;

  // Drains the ring and returns the events produced since the last call.
  std::vector<cilium_event> events();
  // Events of one type among `evs`.
  static std::vector<cilium_event> ofType(const std::vector<cilium_event>& evs, uint8_t type);
  static std::string describe(const std::vector<cilium_event>& evs);
  // Packets counted under (reason, dir), summed over CPUs.
  uint64_t metric(uint8_t reason, uint8_t dir);

  datapath::Maps maps() { return dp_->maps(); }
  // The conntrack entry of a tuple in its family's maps (cilium_ct4_* or cilium_ct6_*).
  std::optional<ct_entry> ctEntry(const std::string& saddr, const std::string& daddr,
                                  uint16_t sport, uint16_t dport, uint8_t proto, uint8_t dir);

  std::unique_ptr<Topology> topo_;
  std::unique_ptr<datapath::Datapath> dp_;
  std::unique_ptr<datapath::EventReader> reader_;
  std::vector<cilium_event> pending_;
  TestEndpoint a_, b_, c_;
  uint16_t next_sport_ = 30000;
};

// `Base` (an LxcTest) run once per family, with dual-stack endpoints either way.
template <class Base>
class FamilyTest : public Base, public ::testing::WithParamInterface<Family> {
 protected:
  void SetUp() override {
    this->dual_stack_ = true;
    this->family_ = GetParam();
    Base::SetUp();
  }
};

}  // namespace cilium::testing
