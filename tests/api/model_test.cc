// API models: JSON round trips of every schema, decode errors that name the field, endpoint ids.
#include "api/model/model.h"

#include <gtest/gtest.h>

namespace cilium::api {
namespace {

template <typename T>
void expectRoundTrip(const T& value) {
  Json j = encode(value);
  auto back = decode<T>(Json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error().toString() << " in " << j.dump();
  EXPECT_EQ(*back, value) << j.dump();
}

EndpointChangeRequest sampleChangeRequest() {
  EndpointChangeRequest r;
  r.id = 0;
  r.container_id = "3f5c0e";
  r.container_interface_name = "eth0";
  r.labels = {"k8s:app=xwing", "k8s:io.kubernetes.pod.namespace=default"};
  r.interface_name = "lxc1234567890ab";
  r.interface_index = 17;
  r.state = EndpointState::kWaitingForIdentity;
  r.mac = "0a:58:0a:c8:00:02";
  r.host_mac = "3e:1f:00:aa:bb:cc";
  r.addressing = AddressPair{.ipv4 = "10.200.0.2", .ipv6 = "fd00::2"};
  r.k8s_pod_name = "xwing";
  r.k8s_namespace = "default";
  r.sync_build_endpoint = true;
  r.netns = "/var/run/netns/cni-1";
  r.netns_cookie = 18446744073709551615ull;
  r.policy_enabled = false;
  r.datapath_configuration = EndpointDatapathConfiguration{.require_routing = false};
  return r;
}

TEST(ModelTest, RoundTripsEverySchema) {
  expectRoundTrip(sampleChangeRequest());

  StatusResponse st;
  st.cilium = ComponentStatus{StatusState::kOk, "1.0"};
  st.kubernetes = K8sStatus{StatusState::kDisabled, "", {"v1::Pod"}};
  st.hubble = HubbleStatus{StatusState::kOk, "", HubbleObserverStatus{4095, 12, 300, "1m0s"}};
  st.ipam = IpamStatus{{{"10.200.0.2", "default/xwing"}}, {"10.200.0.2"}, {}, "IPv4: 1/253"};
  st.cluster = ClusterStatus{ComponentStatus{StatusState::kWarning, "x"}, "node-1"};
  st.identity_range = IdentityRange{256, 65535};
  st.bpf_maps = BpfMapStatus{0.0025, {{"cilium_lxc", 65535}}};
  st.cni_chaining = CniChainingStatus{"none"};
  st.attach_mode = "TCX";
  st.stale = {{"k8s", "2024-01-01T00:00:00Z"}};
  expectRoundTrip(st);

  DaemonConfiguration cfg;
  cfg.spec = DaemonConfigurationSpec{{{"debug", "true"}}, "default"};
  DaemonConfigurationStatus cs;
  cs.realized = cfg.spec;
  cs.immutable = {{"state-dir", "/var/run/cilium"}};
  cs.addressing =
      NodeAddressing{NodeAddressingElement{true, "10.200.0.1", "10.200.0.0/24", ""}, {}};
  cs.daemon_configuration_map = {{"bpf-ct-global-tcp-max", 524288}, {"debug", true}};
  cs.device_mtu = 1500;
  cfg.status = cs;
  expectRoundTrip(cfg);

  Endpoint ep;
  ep.id = 42;
  ep.spec = EndpointConfigurationSpec{{{"Debug", "Disabled"}}, LabelConfigurationSpec{{"a:b"}}};
  EndpointStatus es;
  es.state = EndpointState::kReady;
  es.external_identifiers = EndpointIdentifiers{.container_id = "c1", .pod_name = "default/xwing"};
  es.identity = Identity{12345, {"k8s:app=xwing"}, "abc"};
  es.networking =
      EndpointNetworking{{AddressPair{.ipv4 = "10.200.0.2"}}, {}, "aa", "bb", "lxc1", 7, ""};
  EndpointPolicy pol;
  pol.policy_revision = 3;
  pol.policy_enabled = EndpointPolicyEnabled::kIngress;
  pol.allowed_ingress_identities = {1, 12345};
  pol.l4 = Json{{"ingress", Json::array()}};
  es.policy = EndpointPolicyStatus{pol, pol, 0};
  es.log = {EndpointStatusChange{"2024", "ok", "created", EndpointState::kReady}};
  es.health = EndpointHealth{EndpointHealthStatus::kOk, EndpointHealthStatus::kOk,
                             EndpointHealthStatus::kPending, true};
  es.named_ports = {Port{"TCP", 80, "http"}};
  es.labels = LabelConfigurationStatus{LabelConfigurationSpec{{"u:x"}}, {"k8s:app=xwing"}, {}, {}};
  ep.status = es;
  expectRoundTrip(ep);

  IpamResponse ipam;
  ipam.address.ipv4 = "10.200.0.2";
  ipam.ipv4 = IpamAddressResponse{"10.200.0.2", "10.200.0.1", {"10.200.0.0/24"}, "", "", ""};
  ipam.host_addressing.ipv4 = NodeAddressingElement{true, "10.200.0.1", "10.200.0.0/24", ""};
  expectRoundTrip(ipam);

  expectRoundTrip(Policy{7, "[]"});
  expectRoundTrip(SelectorIdentityMapping{"&LabelSelector{...}", {1, 2}, 3, {"k8s:policy=x"}});
  expectRoundTrip(BpfMapList{{BpfMap{"/sys/fs/bpf/cilium/cilium_lxc", {{"k", "v", "ok", ""}}}}});
  expectRoundTrip(LabelConfiguration{LabelConfigurationSpec{{"a:b"}}, {}});

  DebugInfo di;
  di.cilium_version = "0.1.0";
  di.cilium_status = st;
  di.endpoint_list = {ep};
  di.subsystem = {{"ipam", "ok"}};
  expectRoundTrip(di);

  MonitorEvent ev;
  ev.type = "drop";
  ev.drop_reason = 133;
  ev.drop_reason_desc = "Policy denied";
  ev.tuple = MonitorTuple{"10.0.0.1", "10.0.0.2", 1234, 80, "tcp", "SYN", 0, 0};
  expectRoundTrip(ev);
}

TEST(ModelTest, EncodingOmitsEmptyFieldsAndKeepsRequiredOnes) {
  EndpointChangeRequest r;
  r.state = EndpointState::kWaitingForIdentity;
  EXPECT_EQ(encode(r).dump(), R"({"state":"waiting-for-identity"})");
  IpamResponse ipam;
  EXPECT_EQ(encode(ipam).dump(), R"({"address":{},"host-addressing":{}})");
}

TEST(ModelTest, ListsRoundTrip) {
  std::vector<Identity> ids = {{1, {"reserved:host"}, ""}, {2, {"reserved:world"}, ""}};
  auto back = decodeList<Identity>(encodeList(ids));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, ids);
  auto bad = decodeList<Identity>(Json::parse(R"([{"id": 1}, {"id": "2"}])"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "[1].id: expected an integer, got a string");
}

std::string decodeError(std::string_view text) {
  auto r = decodeText<EndpointChangeRequest>(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.error().message();
}

TEST(ModelTest, DecodeErrorsNameTheField) {
  EXPECT_EQ(decodeError(R"({"state": "ready", "addressing": {"ipv4": 5}})"),
            "addressing.ipv4: expected a string, got an integer");
  EXPECT_EQ(decodeError(R"({"addressing": {}})"), "state: required field is missing");
  EXPECT_EQ(decodeError(R"({"state": "bogus"})"),
            "state: 'bogus' is not one of waiting-for-identity, not-ready, waiting-to-regenerate, "
            "regenerating, restoring, ready, disconnecting, disconnected, invalid");
  EXPECT_EQ(decodeError(R"({"state": "ready", "labels": ["a", 3]})"),
            "labels[1]: expected a string, got an integer");
  EXPECT_EQ(decodeError(R"({"state": "ready", "labels": "a"})"),
            "labels: expected an array, got a string");
  EXPECT_EQ(decodeError(R"({"state": "ready", "interface-index": 1.5})"),
            "interface-index: expected an integer, got a number");
  EXPECT_EQ(decodeError(R"({"state": "ready", "sync-build-endpoint": "yes"})"),
            "sync-build-endpoint: expected a boolean, got a string");
  EXPECT_EQ(decodeError(R"({"state": "ready", "netns-cookie": -1})"),
            "netns-cookie: -1 is negative");
  EXPECT_EQ(decodeError(R"({"state": "ready", "addressing": {"ipv4": "10.0.0.300"}})"),
            "addressing.ipv4: '10.0.0.300' is not an IPv4 address");
  EXPECT_EQ(decodeError(R"({"state": "ready", "addressing": {"ipv6": "10.0.0.3"}})"),
            "addressing.ipv6: '10.0.0.3' is not an IPv6 address");
  EXPECT_EQ(decodeError(R"({"state": "ready", "mac": "0a:58:0a"})"),
            "mac: '0a:58:0a' is not a MAC address (aa:bb:cc:dd:ee:ff)");
  EXPECT_EQ(decodeError(R"({"state": "ready", "id": 70000})"), "id: 70000 is not 0..65535");
  EXPECT_EQ(decodeError(R"({"state": "ready", "interface-index": -2})"),
            "interface-index: -2 is not 0..2147483647");
  EXPECT_EQ(decodeError(R"({"state": "ready", "interface-name": "a-very-long-interface"})"),
            "interface-name: 'a-very-long-interface' is longer than 15 characters");
  EXPECT_EQ(decodeError(R"({"state": "ready", "datapath-configuration": {"require-routing": 1}})"),
            "datapath-configuration.require-routing: expected a boolean, got an integer");
  EXPECT_EQ(decodeError(R"([])"), "expected an object, got an array");
  EXPECT_EQ(decodeError(R"({"state": "ready", )"), "body: malformed JSON at byte 20");
  EXPECT_EQ(decodeError(""), "body: malformed JSON at byte 1");
  std::string deep(100, '[');
  EXPECT_EQ(decodeError(deep), "body: JSON nested deeper than 64 levels");
}

TEST(ModelTest, NullAndUnknownFieldsAreIgnored) {
  auto r = decodeText<EndpointChangeRequest>(
      R"({"state": "ready", "container-id": null, "some-future-field": {"x": 1}})");
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_TRUE(r->container_id.empty());
  EXPECT_EQ(r->state, EndpointState::kReady);
}

TEST(ModelTest, DaemonConfigurationSpecValidation) {
  auto bad = decodeText<DaemonConfigurationSpec>(R"({"policy-enforcement": "sometimes"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "policy-enforcement: 'sometimes' is not one of default, always, never");
  auto opts = decodeText<DaemonConfigurationSpec>(R"({"options": {"debug": true}})");
  ASSERT_FALSE(opts.ok());
  EXPECT_EQ(opts.error().message(), "options.debug: expected a string, got a boolean");
}

TEST(EndpointRefTest, ParsesEveryForm) {
  auto num = parseEndpointRef("42");
  ASSERT_TRUE(num.ok());
  EXPECT_EQ(num->kind, EndpointRef::Kind::kCiliumLocal);
  EXPECT_EQ(num->local_id, 42);
  EXPECT_EQ(parseEndpointRef("cilium-local:7")->local_id, 7);
  auto cid = parseEndpointRef("container-id:3f5c0e");
  EXPECT_EQ(cid->kind, EndpointRef::Kind::kContainerId);
  EXPECT_EQ(cid->value, "3f5c0e");
  auto pod = parseEndpointRef("pod-name:default/xwing");
  EXPECT_EQ(pod->kind, EndpointRef::Kind::kPodName);
  EXPECT_EQ(pod->pod_namespace, "default");
  EXPECT_EQ(pod->pod_name, "xwing");
  EXPECT_EQ(pod->toString(), "pod-name:default/xwing");
  EXPECT_EQ(parseEndpointRef("pod-name:kube-system:coredns")->pod_name, "coredns");
  auto att = parseEndpointRef("cni-attachment-id:abc:eth0");
  EXPECT_EQ(att->value, "abc");
  EXPECT_EQ(att->interface, "eth0");
  EXPECT_EQ(att->toString(), "cni-attachment-id:abc:eth0");

  EXPECT_EQ(parseEndpointRef("0").error().message(), "endpoint id '0': endpoint ids are 1..65535");
  EXPECT_EQ(parseEndpointRef("xwing").error().message(),
            "endpoint id 'xwing': not a number and no known prefix");
  EXPECT_EQ(parseEndpointRef("foo:bar").error().message(),
            "endpoint id 'foo:bar': unknown prefix 'foo'");
  EXPECT_FALSE(parseEndpointRef("pod-name:xwing").ok());
  EXPECT_FALSE(parseEndpointRef("container-id:").ok());
  EXPECT_FALSE(parseEndpointRef("").ok());
  EXPECT_FALSE(parseEndpointRef("99999999999999999999").ok());
  EXPECT_FALSE(parseEndpointRef(std::string("1\n")).ok());
}

}  // namespace
}  // namespace cilium::api
