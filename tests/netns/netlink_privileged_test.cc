// netns tier: the rtnetlink helpers (agent/datapath/netlink.h) against the kernel, inside a test
// node namespace: veth pairs, lookups, MTU and state, addresses, routes, rename, move to another
// namespace, delete; idempotent deletes and clear errors.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/netns.h"
#include "agent/datapath/maps.h"
#include "agent/datapath/netlink.h"
#include "tests/harness/netns.h"
#include "tests/harness/temp_dir.h"

namespace cilium::datapath::netlink {
namespace {

uint32_t ip(const char* s) { return *parseIpv4(s); }

TEST(NetlinkTest, VethAddressRouteLifecycle) {
  auto topo = testing::Topology::create(201);
  ASSERT_TRUE(topo.ok()) << topo.error().toString();
  auto pod = (*topo)->addPod("p", "10.201.0.5");
  ASSERT_TRUE(pod.ok()) << pod.error().toString();
  const std::string node = (*topo)->nodeNetns();
  auto inNode = [&](const std::vector<std::string>& argv) {
    auto r = (*topo)->exec(node, argv);
    return r.ok() ? r->out : std::string("exec failed");
  };

  int l0 = 0, l1 = 0;
  Status st = runInNetns(node, [&]() -> Status {
    CILIUM_RETURN_IF_ERROR(createVeth("ctest0", "ctest1"));
    auto again = createVeth("ctest0", "ctest1");
    EXPECT_FALSE(again.ok());
    if (!again.ok()) {
      EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
    }
    EXPECT_EQ(createVeth("a-name-far-too-long", "x").error().code(), ErrorCode::kInvalidArgument);
    CILIUM_ASSIGN_OR_RETURN(auto a, linkByName("ctest0"));
    CILIUM_ASSIGN_OR_RETURN(auto b, linkByName("ctest1"));
    l0 = a.ifindex;
    l1 = b.ifindex;
    EXPECT_EQ(a.kind, "veth");
    EXPECT_EQ(a.mac.size(), 17u);
    EXPECT_FALSE(a.up);
    EXPECT_EQ(linkByName("nope0").error().code(), ErrorCode::kNotFound);
    EXPECT_EQ(linkByIndex(999999).error().code(), ErrorCode::kNotFound);
    CILIUM_ASSIGN_OR_RETURN(auto byidx, linkByIndex(l0));
    EXPECT_EQ(byidx.name, "ctest0");

    CILIUM_RETURN_IF_ERROR(setMtu(l0, 1400));
    CILIUM_RETURN_IF_ERROR(setLinkUp(l1));
    CILIUM_RETURN_IF_ERROR(setLinkUp(l0));
    CILIUM_ASSIGN_OR_RETURN(auto up, linkByIndex(l0));
    EXPECT_TRUE(up.up);
    EXPECT_EQ(up.mtu, 1400u);
    CILIUM_ASSIGN_OR_RETURN(auto all, listLinks());
    EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](const Link& l) { return l.name == "lo"; }));

    CILIUM_RETURN_IF_ERROR(addAddress4(l0, ip("10.201.9.1"), 32));
    CILIUM_RETURN_IF_ERROR(addAddress4(l0, ip("10.201.9.1"), 32));  // exists: fine
    CILIUM_RETURN_IF_ERROR(replaceRoute4(ip("10.201.9.9"), 32, l0));
    CILIUM_RETURN_IF_ERROR(replaceRoute4(ip("10.201.9.9"), 32, l0));  // replace: fine
    return okStatus();
  });
  ASSERT_TRUE(st.ok()) << st.error().toString();
  EXPECT_NE(inNode({"ip", "-4", "addr", "show", "dev", "ctest0"}).find("10.201.9.1/32"),
            std::string::npos);
  EXPECT_NE(inNode({"ip", "route", "show", "10.201.9.9"}).find("dev ctest0"), std::string::npos);

  auto podfd = openNetns(pod->netns);
  ASSERT_TRUE(podfd.ok());
  st = runInNetns(node, [&]() -> Status {
    CILIUM_RETURN_IF_ERROR(setLinkUp(l1, false));
    CILIUM_RETURN_IF_ERROR(renameLink(l1, "ctest2"));
    CILIUM_RETURN_IF_ERROR(moveToNetns(l1, podfd->get()));
    EXPECT_EQ(linkByName("ctest2").error().code(), ErrorCode::kNotFound);
    return okStatus();
  });
  ASSERT_TRUE(st.ok()) << st.error().toString();
  auto moved = (*topo)->exec(pod->netns, {"ip", "link", "show", "ctest2"});
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->exit_code, 0) << "the renamed peer is in the pod namespace";

  st = runInNetns(node, [&]() -> Status {
    CILIUM_RETURN_IF_ERROR(deleteRoute4(ip("10.201.9.9"), 32, l0));
    CILIUM_RETURN_IF_ERROR(deleteRoute4(ip("10.201.9.9"), 32, l0));  // absent: fine
    CILIUM_RETURN_IF_ERROR(deleteAddress4(l0, ip("10.201.9.1"), 32));
    CILIUM_RETURN_IF_ERROR(deleteAddress4(l0, ip("10.201.9.1"), 32));
    CILIUM_RETURN_IF_ERROR(deleteLink(l0));
    CILIUM_RETURN_IF_ERROR(deleteLink(l0));  // absent: fine
    EXPECT_EQ(linkByName("ctest0").error().code(), ErrorCode::kNotFound);
    return okStatus();
  });
  ASSERT_TRUE(st.ok()) << st.error().toString();
  EXPECT_EQ(inNode({"ip", "route", "show", "10.201.9.9"}), "");
  auto gone = (*topo)->exec(pod->netns, {"ip", "link", "show", "ctest2"});
  ASSERT_TRUE(gone.ok());
  EXPECT_NE(gone->exit_code, 0) << "deleting one end of a veth deletes the pair";

  EXPECT_EQ(setDeviceSysctl("/proc", "all", "forwarding", "1").error().code(),
            ErrorCode::kInvalidArgument)
      << "global switches are never touched";
  EXPECT_EQ(setDeviceSysctl("proc", "lo", "accept_local", "1").error().code(),
            ErrorCode::kInvalidArgument)
      << "a relative procfs is refused";
  // The write goes under the procfs root it is given (the agent's procfs key).
  testing::TempDir procfs;
  std::filesystem::create_directories(procfs.path() + "/sys/net/ipv4/conf/lo");
  std::ofstream(procfs.path() + "/sys/net/ipv4/conf/lo/accept_local") << "0";
  auto written = setDeviceSysctl(procfs.path(), "lo", "accept_local", "1");
  ASSERT_TRUE(written.ok()) << written.error().toString();
  EXPECT_EQ(readFile(procfs.path() + "/sys/net/ipv4/conf/lo/accept_local").valueOr(""), "1");
  EXPECT_EQ(setDeviceSysctl(procfs.path(), "eth9", "accept_local", "1").error().code(),
            ErrorCode::kNotFound)
      << "a missing path is an error naming it, not a silent skip";
}

}  // namespace
}  // namespace cilium::datapath::netlink
