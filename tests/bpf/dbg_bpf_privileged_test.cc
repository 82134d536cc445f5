// bpf tier: `cilium-dbg bpf ...` reads real pinned maps with known contents from a per-test pin
// directory, with the pin directory given as a flag or learned from a running agent.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <sstream>

#include <gtest/gtest.h>

#include "agent/bpf/map.h"
#include "agent/daemon/daemon.h"
#include "agent/datapath/maps.h"
#include "agent/dbg/bpf_maps.h"
#include "agent/dbg/dbg.h"
#include "tests/harness/netns.h"

namespace cilium {
namespace {

uint32_t ip4(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

UniqueFd createMap(bpf_map_type type, const char* name, uint32_t key, uint32_t value, uint32_t max,
                   uint32_t flags = 0, int inner_fd = -1) {
  bpf_map_create_opts opts{};
  opts.sz = sizeof(opts);
  opts.map_flags = flags;
  if (inner_fd >= 0) opts.inner_map_fd = static_cast<uint32_t>(inner_fd);
  return UniqueFd(::bpf_map_create(type, name, key, value, max, &opts));
}

class DbgBpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto topo = testing::Topology::create();
    ASSERT_TRUE(topo.ok()) << topo.error().toString();
    topo_ = std::move(*topo);
    auto pin = topo_->pinDir();
    ASSERT_TRUE(pin.ok()) << pin.error().toString();
    pin_ = *pin;
  }

  // Creates a map, pins it as <pin dir>/<name> and returns a typed handle on it.
  template <typename K, typename V>
  std::unique_ptr<bpf::KernelMap<K, V>> pinned(bpf_map_type type, const char* name,
                                               uint32_t value_size, uint32_t flags = 0,
                                               int inner_fd = -1) {
    UniqueFd fd = createMap(type, name, sizeof(K), value_size, 64, flags, inner_fd);
    EXPECT_TRUE(fd.valid()) << name << ": " << std::strerror(errno);
    EXPECT_EQ(::bpf_obj_pin(fd.get(), (pin_ + "/" + name).c_str()), 0) << std::strerror(errno);
    auto m = bpf::KernelMap<K, V>::fromFd(std::move(fd));
    EXPECT_TRUE(m.ok()) << m.error().toString();
    return std::move(*m);
  }

  struct Run {
    int rc;
    std::string out;
    std::string err;
  };
  Run dbg(std::vector<std::string> args, const std::string& sock = "") {
    args.insert(args.begin(), {"-H", sock.empty() ? topo_->tmpDir() + "/no-agent.sock" : sock});
    std::ostringstream out, err;
    dbg::DbgEnv env = dbg::DbgEnv::system();
    env.monotonic_seconds = [] { return uint64_t{1000}; };
    int rc = dbg::runDbg(args, out, err, env);
    return {rc, out.str(), err.str()};
  }

  std::unique_ptr<testing::Topology> topo_;
  std::string pin_;
};

TEST_F(DbgBpfTest, EndpointAndIpcacheMaps) {
  auto lxc = pinned<endpoint_key, endpoint_info>(BPF_MAP_TYPE_HASH, dbg::kEndpointMapName,
                                                 sizeof(endpoint_info));
  endpoint_info pod{};
  pod.ifindex = 7;
  pod.lxc_id = 1234;
  pod.sec_id = 12345;
  const uint8_t mac[6] = {0x0a, 0x58, 0x0a, 0xc8, 0x00, 0x02};
  std::memcpy(pod.mac, mac, 6);
  endpoint_info host{};
  host.flags = ENDPOINT_F_HOST;
  ASSERT_TRUE(lxc->update(datapath::endpointKeyV4(ip4("10.200.0.2")), pod).ok());
  ASSERT_TRUE(lxc->update(datapath::endpointKeyV4(ip4("10.200.0.1")), host).ok());
  auto r = dbg({"--pin-dir", pin_, "bpf", "endpoint", "list"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "IP ADDRESS     LOCAL ENDPOINT INFO\n"
            "10.200.0.1:0   (localhost)\n"
            "10.200.0.2:0   id=1234  sec_id=12345 flags=0x0000 ifindex=7   mac=0a:58:0a:c8:00:02 "
            "nodemac=00:00:00:00:00:00\n");

  auto ipc = pinned<ipcache_key, remote_endpoint_info>(
      BPF_MAP_TYPE_LPM_TRIE, dbg::kIpcacheMapName, sizeof(remote_endpoint_info), BPF_F_NO_PREALLOC);
  remote_endpoint_info world{};
  world.sec_identity = 2;
  remote_endpoint_info podinfo{};
  podinfo.sec_identity = 12345;
  ASSERT_TRUE(ipc->update(datapath::ipcacheKeyV4(0, 0), world).ok());
  ASSERT_TRUE(ipc->update(datapath::ipcacheKeyV4(ip4("10.200.0.2"), 32), podinfo).ok());
  auto ri = dbg({"--pin-dir", pin_, "bpf", "ipcache", "list"});
  ASSERT_EQ(ri.rc, 0) << ri.err;
  EXPECT_EQ(
      ri.out,
      "IP PREFIX/ADDRESS   IDENTITY\n"
      "0.0.0.0/0           identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n"
      "10.200.0.2/32       identity=12345 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n");
}

TEST_F(DbgBpfTest, ConntrackAndMetricsMaps) {
  auto tcp = pinned<ct_key4, ct_entry>(BPF_MAP_TYPE_LRU_HASH, dbg::kCtTcpMapName, sizeof(ct_entry));
  auto any = pinned<ct_key4, ct_entry>(BPF_MAP_TYPE_LRU_HASH, dbg::kCtAnyMapName, sizeof(ct_entry));
  ct_key4 k{ip4("10.200.0.2"), ip4("10.200.0.3"), htons(43210), htons(80), 6, CT_KEY_EGRESS, 0};
  ct_entry e{};
  e.tx_packets = 3;
  e.lifetime = 1100;
  e.flags = CT_F_SEEN_NON_SYN | CT_F_TX_CLOSING;
  e.src_sec_id = 12345;
  ASSERT_TRUE(tcp->update(k, e).ok());
  ct_key4 icmp{ip4("10.200.0.2"), ip4("10.200.0.3"), htons(7), 0, 1, CT_KEY_INGRESS, 0};
  ct_entry ie{};
  ie.lifetime = 1060;
  ASSERT_TRUE(any->update(icmp, ie).ok());
  auto r = dbg({"--pin-dir", pin_, "bpf", "ct", "list", "global"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "ICMP IN 10.200.0.2:7 -> 10.200.0.3:0 expires=1060 (remaining: 60 sec(s)) RxPackets=0 "
      "RxBytes=0 "
      "RxFlagsSeen=0x00 LastRxReport=0 TxPackets=0 TxBytes=0 TxFlagsSeen=0x00 LastTxReport=0 "
      "Flags=0x0000 [ ] RevNAT=0 SourceSecurityID=0 PolicyRevision=0\n"
      "TCP OUT 10.200.0.2:43210 -> 10.200.0.3:80 expires=1100 (remaining: 100 sec(s)) RxPackets=0 "
      "RxBytes=0 RxFlagsSeen=0x00 LastRxReport=0 TxPackets=3 TxBytes=0 TxFlagsSeen=0x00 "
      "LastTxReport=0 Flags=0x0012 [ TxClosing SeenNonSyn ] RevNAT=0 SourceSecurityID=12345 "
      "PolicyRevision=0\n");

  auto metrics = pinned<metrics_key, bpf::PerCpu<metrics_value>>(
      BPF_MAP_TYPE_PERCPU_HASH, dbg::kMetricsMapName, sizeof(metrics_value));
  bpf::PerCpu<metrics_value> v;
  v.values.assign(bpf::possibleCpus(), metrics_value{0, 0});
  v.values[0] = {4, 400};
  v.values.back().count += 1;
  v.values.back().bytes += 100;
  ASSERT_TRUE(
      metrics->update(metrics_key{DROP_POLICY, METRIC_INGRESS, 812, DROP_FILE_BPF_LXC, {}}, v)
          .ok());
  auto m = dbg({"--pin-dir", pin_, "bpf", "metrics", "list"});
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_EQ(m.out,
            "REASON          DIRECTION   PACKETS   BYTES   LINE   FILE\n"
            "Policy denied   INGRESS     5         500     812    bpf_lxc.c\n");
}

TEST_F(DbgBpfTest, PolicyMapOfOneEndpointThroughTheOuterMap) {
  UniqueFd inner = createMap(BPF_MAP_TYPE_LPM_TRIE, "cilt_pol_in", sizeof(policy_key),
                             sizeof(policy_entry), 64, BPF_F_NO_PREALLOC);
  ASSERT_TRUE(inner.valid()) << std::strerror(errno);
  auto outer =
      pinned<uint32_t, uint32_t>(BPF_MAP_TYPE_HASH_OF_MAPS, dbg::kPolicyMapName, 4, 0, inner.get());
  auto inner_map = bpf::KernelMap<policy_key, policy_entry>::fromBorrowedFd(inner.get());
  ASSERT_TRUE(inner_map.ok()) << inner_map.error().toString();
  policy_entry allow{};
  policy_entry deny{};
  deny.flags = POLICY_F_DENY;
  ASSERT_TRUE((*inner_map)
                  ->update(datapath::policyKey(IDENTITY_HOST, POLICY_INGRESS, 0, 0, 0), allow)
                  .ok());
  ASSERT_TRUE(
      (*inner_map)->update(datapath::policyKey(12345, POLICY_INGRESS, 6, 80, 16), allow).ok());
  ASSERT_TRUE((*inner_map)->update(datapath::policyKey(0, POLICY_EGRESS, 6, 8080, 12), deny).ok());
  ASSERT_TRUE(outer->update(25, static_cast<uint32_t>(inner.get())).ok());

  auto r = dbg({"--pin-dir", pin_, "bpf", "policy", "get", "25"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string inner_id = std::to_string((*inner_map)->info().id);
  EXPECT_EQ(r.out,
            "Endpoint ID: 25\n"
            "Path: " +
                pin_ + "/cilium_policy_v2 [25] (inner map id " + inner_id +
                ")\n\n"
                "POLICY   DIRECTION   LABELS (source:key[=value])   PORT/PROTO      PROXY PORT   "
                "AUTH TYPE   PREFIX\n"
                "Allow    Ingress     reserved:host                 ANY             NONE         "
                "disabled    40\n"
                "Allow    Ingress     identity=12345                80/TCP          NONE         "
                "disabled    64\n"
                "Deny     Egress      ANY                           8080-8095/TCP   NONE         "
                "disabled    60\n");

  auto missing = dbg({"--pin-dir", pin_, "bpf", "policy", "get", "26"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_EQ(missing.err, "Error: endpoint 26 has no policy map in " + pin_ +
                             "/cilium_policy_v2 (its packets are dropped as not ready)\n");
}

TEST_F(DbgBpfTest, PinDirComesFromTheAgentAndMissingMapsAreClearErrors) {
  auto lxc = pinned<endpoint_key, endpoint_info>(BPF_MAP_TYPE_HASH, dbg::kEndpointMapName,
                                                 sizeof(endpoint_info));
  endpoint_info host{};
  host.flags = ENDPOINT_F_HOST;
  ASSERT_TRUE(lxc->update(datapath::endpointKeyV4(ip4("10.200.0.1")), host).ok());

  std::string dir = topo_->tmpDir();
  auto loaded = daemon::loadConfig(
      {"--state-dir=" + dir + "/run", "--socket-path=" + dir + "/run/cilium.sock",
       "--bpf-pin-dir=" + pin_, "--ipv4-range=10.200.0.0/24", "--node-name=n1"},
      daemon::Environment::system());
  ASSERT_TRUE(loaded.ok()) << loaded.error().toString();
  daemon::Daemon agent(loaded->config);  // manages bpffs: the pin dir exists already
  ASSERT_TRUE(agent.start().ok());
  auto r = dbg({"bpf", "endpoint", "list"}, dir + "/run/cilium.sock");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "IP ADDRESS     LOCAL ENDPOINT INFO\n10.200.0.1:0   (localhost)\n");
  agent.stop();

  auto none = dbg({"--pin-dir", pin_, "bpf", "ipcache", "list"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("open " + pin_ + "/cilium_ipcache"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace cilium
