// Decoding of typed resources: fields the agent uses, defaults, and errors that name the field.
#include "agent/k8s/resources.h"

#include <gtest/gtest.h>

namespace cilium::k8s {
namespace {

using nlohmann::json;

TEST(ResourcesTest, PodDecodesLabelsPortsAndAddresses) {
  auto pod = Resource<Pod>::decode(json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                 "labels": {"app": "web"}, "annotations": {"a": "b"}},
    "spec": {"nodeName": "n1", "containers": [
      {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]},
      {"name": "d", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]},
    "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
  })"));
  ASSERT_TRUE(pod.ok()) << pod.error().message();
  EXPECT_EQ(pod->meta.namespace_name, "shop");
  EXPECT_EQ(pod->meta.resource_version, "7");
  EXPECT_EQ(pod->meta.labels.at("app"), "web");
  EXPECT_EQ(pod->node_name, "n1");
  ASSERT_EQ(pod->ports.size(), 2u);
  EXPECT_EQ(pod->ports[0].name, "http");
  EXPECT_EQ(pod->ports[0].port, 8080);
  EXPECT_EQ(pod->ports[1].protocol, "UDP");
  EXPECT_EQ(pod->pod_ips, (std::vector<std::string>{"10.0.0.5", "fd00::5"}));
}

TEST(ResourcesTest, ListItemsWithoutKindAndDefaultNamespace) {
  auto ns = Resource<Namespace>::decode(json::parse(R"({"metadata": {"name": "shop",
    "labels": {"team": "a"}}})"));
  ASSERT_TRUE(ns.ok());
  EXPECT_EQ(ns->meta.namespace_name, "");
  auto svc = Resource<Service>::decode(json::parse(R"({"metadata": {"name": "s"},
    "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "targetPort": "dns"},
             {"port": 80, "targetPort": 8080, "protocol": "TCP"}], "selector": {"app": "x"}}})"));
  ASSERT_TRUE(svc.ok()) << svc.error().message();
  EXPECT_EQ(svc->meta.namespace_name, "default");
  EXPECT_EQ(svc->cluster_ips, std::vector<std::string>{"10.96.0.10"});
  EXPECT_EQ(svc->ports[0].target_port, "dns");
  EXPECT_EQ(svc->ports[1].target_port, "8080");
}

TEST(ResourcesTest, EndpointSliceConditionsDefaultToReady) {
  auto es = Resource<EndpointSlice>::decode(json::parse(R"({"kind": "EndpointSlice",
    "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
    "metadata": {"name": "s-1", "namespace": "a", "labels": {"kubernetes.io/service-name": "s"}},
    "endpoints": [{"addresses": ["10.0.0.1"]},
                  {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "terminating": true}}],
    "ports": [{"name": "http", "port": 80}]})"));
  ASSERT_TRUE(es.ok()) << es.error().message();
  EXPECT_EQ(es->service_name, "s");
  EXPECT_TRUE(es->endpoints[0].ready);
  EXPECT_FALSE(es->endpoints[1].ready);
  EXPECT_TRUE(es->endpoints[1].terminating);
}

TEST(ResourcesTest, PoliciesKeepTheirObjectWithKind) {
  auto cnp = Resource<CiliumNetworkPolicy>::decode(json::parse(R"({
    "metadata": {"name": "p", "namespace": "a"}, "spec": {"endpointSelector": {}}})"));
  ASSERT_TRUE(cnp.ok());
  EXPECT_EQ(cnp->raw["kind"], "CiliumNetworkPolicy");
  EXPECT_EQ(cnp->raw["apiVersion"], "cilium.io/v2");
  EXPECT_EQ(cnp->raw["spec"], json::parse(R"({"endpointSelector": {}})"));
}

TEST(ResourcesTest, ErrorsNameTheField) {
  auto expectError = [](Result<Pod> r, const std::string& want) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().message(), want);
  };
  expectError(
      Resource<Pod>::decode(json::parse(R"({"kind": "Service", "metadata": {"name": "x"}})")),
      "kind: \"Service\" is not Pod");
  expectError(
      Resource<Pod>::decode(json::parse(R"({"apiVersion": "v2", "metadata": {"name": "x"}})")),
      "apiVersion: \"v2\" is not v1");
  expectError(Resource<Pod>::decode(json::parse(R"({"metadata": {}})")), "metadata.name: required");
  expectError(
      Resource<Pod>::decode(json::parse(R"({"metadata": {"name": "x", "labels": {"a": 1}}})")),
      "metadata.labels.a: must be a string");
  expectError(Resource<Pod>::decode(json::parse(R"({"metadata": {"name": "x"},
    "spec": {"containers": [{"ports": [{"containerPort": "80"}]}]}})")),
              "spec.containers[0].ports[0].containerPort: must be an integer");
  expectError(Resource<Pod>::decode(json::parse(R"({"metadata": {"name": "x"},
    "spec": {"containers": [{"ports": [{"containerPort": 70000}]}]}})")),
              "spec.containers[0].ports[0].containerPort: 70000 is outside [1, 65535]");
  expectError(Resource<Pod>::decode(json::parse("[1]")), "Pod: must be an object");
  auto svc = Resource<Service>::decode(json::parse(R"({"metadata": {"name": "x"},
    "spec": {"ports": [{"port": 80, "targetPort": -1}]}})"));
  ASSERT_FALSE(svc.ok());
  EXPECT_EQ(svc.error().message(),
            "spec.ports[0].targetPort: must be a port number or a port name");
}

TEST(ResourcesTest, CiliumEndpointAndIdentityRoundTrip) {
  CiliumEndpoint cep;
  cep.meta.name = "web";
  cep.meta.namespace_name = "shop";
  cep.endpoint_id = 12;
  cep.identity_id = 4242;
  cep.identity_labels = {"k8s:app=web"};
  cep.addressing = {{"10.0.0.5", ""}};
  cep.node = "172.30.0.2";
  cep.state = "ready";
  cep.ingress_enforcing = true;
  EXPECT_EQ(toJson(cep)["status"]["networking"]["node"], "172.30.0.2") << "Cilium's field";
  auto back = Resource<CiliumEndpoint>::decode(toJson(cep));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, cep);
  CiliumIdentity id;
  id.meta.name = "4242";
  id.security_labels = {{"k8s:app", "web"}};
  auto idback = Resource<CiliumIdentity>::decode(toJson(id));
  ASSERT_TRUE(idback.ok());
  EXPECT_EQ(*idback, id);
}

TEST(ResourcesTest, Paths) {
  EXPECT_EQ(Resource<Pod>::info().collectionPath(), "/api/v1/pods");
  EXPECT_EQ(Resource<Pod>::info().objectPath("a", "b"), "/api/v1/namespaces/a/pods/b");
  EXPECT_EQ(Resource<CiliumIdentity>::info().objectPath("", "300"),
            "/apis/cilium.io/v2/ciliumidentities/300");
  EXPECT_EQ(Resource<Namespace>::info().objectPath("x", "y"), "/api/v1/namespaces/y");
}

}  // namespace
}  // namespace cilium::k8s
