// The chart's RBAC (deploy/helm/cilium, rendered by helm-template) against the API calls the
// code really makes, recorded by the fake apiserver: the agent's API-facing parts as the daemon
// wires them (the informers of every kind, CiliumNode registration, CiliumEndpoint publishing,
// CRD identities, policy status) and the real cilium-operator (leader election, cluster-pool
// IPAM with an exhausted pool, identity, endpoint and node garbage collection). Every request
// must be allowed by the component's rendered rules, and every (group, resource, verb) the
// rules grant must have been used: the roles list exactly what is read and written.
#include <set>
#include <tuple>

#include <gtest/gtest.h>

#include "agent/common/subprocess.h"
#include "agent/common/yaml.h"
#include "agent/k8s/crd_identity.h"
#include "agent/k8s/publisher.h"
#include "agent/k8s/source.h"
#include "agent/labels/labels.h"
#include "agent/node/registration.h"
#include "operator/operator.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/eventually.h"

namespace cilium {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::eventually;
using testing::FakeApiServer;

// (API group, resource[/subresource], verb)
using Access = std::tuple<std::string, std::string, std::string>;

std::string describe(const Access& a) {
  return fmt::format("{}/{} {}", std::get<0>(a).empty() ? "core" : std::get<0>(a), std::get<1>(a),
                     std::get<2>(a));
}

struct Request {
  Access access;
  std::string ns;  // the namespace of a namespaced request, "" otherwise
};

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The RBAC view of a request, as the apiserver's authorizer sees it; nullopt for non-resource
// URLs (/version, discovery), which every authenticated client may read.
std::optional<Request> requestOf(const FakeApiServer::RequestRecord& r) {
  auto seg = split(r.path);
  size_t i = 0;
  std::string group;
  if (seg.size() >= 2 && seg[0] == "api") {
    i = 2;
  } else if (seg.size() >= 3 && seg[0] == "apis") {
    group = seg[1];
    i = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(seg.begin() + static_cast<long>(i), seg.end());
  if (rest.empty()) return std::nullopt;
  std::string ns;
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  std::string resource = rest[0];
  const bool named = rest.size() >= 2;
  if (rest.size() >= 3) resource += "/" + rest[2];
  std::string verb;
  if (r.method == "GET") {
    const bool watch = r.query.find("watch=true") != std::string::npos ||
                       r.query.find("watch=1") != std::string::npos;
    verb = named ? "get" : watch ? "watch" : "list";
  } else if (r.method == "POST") {
    verb = "create";
  } else if (r.method == "PUT") {
    verb = "update";
  } else if (r.method == "PATCH") {
    verb = "patch";
  } else if (r.method == "DELETE") {
    verb = named ? "delete" : "deletecollection";
  } else {
    verb = r.method;
  }
  return Request{{group, resource, verb}, ns};
}

struct Rules {
  std::set<Access> cluster;     // from ClusterRoles: any namespace
  std::set<Access> namespaced;  // from the Role: only in `ns`
  std::string ns;
};

void addRules(const json& role, std::set<Access>& into) {
  for (const auto& rule : role.at("rules"))
    for (const auto& g : rule.at("apiGroups"))
      for (const auto& res : rule.at("resources"))
        for (const auto& v : rule.at("verbs"))
          into.insert({g.get<std::string>(), res.get<std::string>(), v.get<std::string>()});
}

// The roles of the chart rendered for kube-system: the ClusterRole `name`, and the Role `name`
// when there is one.
Rules renderedRules(const std::string& name) {
  auto out =
      runChecked({CILIUM_HELM_TEMPLATE, "cilium", CILIUM_CHART_DIR, "--namespace", "kube-system"});
  EXPECT_TRUE(out.ok()) << out.error().message();
  Rules rules;
  rules.ns = "kube-system";
  if (!out.ok()) return rules;
  auto docs = yaml::toJson(*out);
  EXPECT_TRUE(docs.ok()) << docs.error().message();
  bool found = false;
  for (const auto& d : docs.ok() ? *docs : std::vector<json>{}) {
    if (d.value("metadata", json::object()).value("name", "") != name) continue;
    if (d.value("kind", "") == "ClusterRole") {
      addRules(d, rules.cluster);
      found = true;
    } else if (d.value("kind", "") == "Role") {
      EXPECT_EQ(d["metadata"].value("namespace", ""), "kube-system");
      addRules(d, rules.namespaced);
    }
  }
  EXPECT_TRUE(found) << "no ClusterRole " << name;
  return rules;
}

// Every request allowed; every granted access used.
void checkExactly(const Rules& rules, const std::vector<FakeApiServer::RequestRecord>& log,
                  const std::string& who) {
  std::set<Access> used;
  for (const auto& r : log) {
    auto req = requestOf(r);
    if (!req) continue;
    const bool allowed =
        rules.cluster.count(req->access) != 0 ||
        (!req->ns.empty() && req->ns == rules.ns && rules.namespaced.count(req->access) != 0);
    EXPECT_TRUE(allowed) << who << ": " << r.method << " " << r.path << "?" << r.query << " ("
                         << describe(req->access) << (req->ns.empty() ? "" : " in " + req->ns)
                         << ") is not allowed by the chart's roles";
    used.insert(req->access);
  }
  for (const auto* set : {&rules.cluster, &rules.namespaced})
    for (const auto& a : *set)
      EXPECT_TRUE(used.count(a)) << who << ": the chart grants " << describe(a)
                                 << ", which the code never used";
}

json object(std::string_view api_version, std::string_view kind, const std::string& name,
            const std::string& ns = "") {
  json meta = {{"name", name}};
  if (!ns.empty()) meta["namespace"] = ns;
  return {{"apiVersion", api_version}, {"kind", kind}, {"metadata", meta}};
}

std::unique_ptr<k8s::Client> client(const FakeApiServer& srv) {
  k8s::ClientConfig cc;
  cc.server = srv.url();
  cc.qps = 0;
  return std::move(*k8s::Client::create(cc));
}

bool sawWatch(const FakeApiServer& srv, std::string_view plural) {
  for (const auto& r : srv.requests())
    if (r.method == "GET" && r.path.ends_with("/" + std::string(plural)) &&
        r.query.find("watch=") != std::string::npos)
      return true;
  return false;
}

TEST(ChartRbacTest, AgentRoleIsExactlyWhatTheAgentCalls) {
  FakeApiServer srv;
  ASSERT_TRUE(srv.start().ok());
  auto cnp = object("cilium.io/v2", "CiliumNetworkPolicy", "p1", "default");
  cnp["spec"] = {{"endpointSelector", json::object()}};
  ASSERT_TRUE(srv.create(k8s::Resource<k8s::CiliumNetworkPolicy>::info(), cnp).ok());
  auto ccnp = object("cilium.io/v2", "CiliumClusterwideNetworkPolicy", "c1");
  ccnp["spec"] = {{"endpointSelector", json::object()}};
  ASSERT_TRUE(srv.create(k8s::Resource<k8s::CiliumClusterwideNetworkPolicy>::info(), ccnp).ok());
  auto c = client(srv);

  // the informers, as K8sSourceComponent starts them: every kind, all pods
  k8s::ApiSource source(*c);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(source.waitForSync(10s));
  for (const auto& info : k8s::allResources())
    ASSERT_TRUE(eventually([&] { return sawWatch(srv, info.plural); }, 10s)) << info.plural;

  // this node's CiliumNode: created (after a 404 patch), then patched with its addresses
  node::RegistrationConfig rc;
  rc.node_name = "node-1";
  rc.internal_ips = {*IpAddr::parse("172.30.0.1")};
  rc.boot_id = "boot-1";
  auto reg = node::Registration::start(*c, source.stores(), rc);
  ASSERT_TRUE(reg.ok()) << reg.error().message();
  node::LocalAddresses addresses{*IpAddr::parse("10.0.1.1"), *IpAddr::parse("10.0.1.2"),
                                 *IpPrefix::parse("10.0.1.0/24")};
  ASSERT_TRUE((*reg)->setAddresses(addresses).ok());

  // a pod's CiliumEndpoint: created, updated, deleted
  k8s::CiliumEndpointPublisher endpoints(*c);
  k8s::EndpointState ep{"default", "web", 12, 256, {"k8s:app=web"}, "10.0.1.10", "", "172.30.0.1"};
  ASSERT_TRUE(endpoints.publish(ep).ok());
  ep.ingress_enforcing = true;
  ASSERT_TRUE(endpoints.publish(ep).ok());
  ASSERT_TRUE(endpoints.remove("default", "web").ok());

  // a CRD identity
  k8s::CrdIdentityBackend identities(*c, source.stores().cilium_identities);
  auto labels = labels::Labels::parse({"k8s:app=web"});
  ASSERT_TRUE(labels.ok());
  auto first = identities.acquire(*labels, std::nullopt);
  ASSERT_TRUE(first.ok());
  // the same labels on another node whose informer has not seen that identity yet: its create
  // conflicts, and it reads the object to see whose it is
  k8s::Store<k8s::CiliumIdentity> not_synced;
  k8s::CrdIdentityBackend racing(*c, not_synced);
  auto second = racing.acquire(*labels, std::nullopt);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, *first);

  // this node's status in a CNP and a CCNP
  k8s::PolicyStatusWriter status(*c, "node-1");
  ASSERT_TRUE(status.write("CiliumNetworkPolicy", "default", "p1", {}).ok());
  ASSERT_TRUE(status.write("CiliumClusterwideNetworkPolicy", "", "c1", {}).ok());

  reg->reset();
  source.stop();
  checkExactly(renderedRules("cilium"), srv.requests(), "cilium-agent");
}

TEST(ChartRbacTest, OperatorRolesAreExactlyWhatTheOperatorCalls) {
  FakeApiServer srv;
  ASSERT_TRUE(srv.start().ok());
  // node-1 exists and needs a CIDR; node-2 too, but the pool has one (its status says so);
  // gone-node's Node is gone; a CiliumEndpoint without its Pod; an identity nobody uses
  for (const auto* n : {"node-1", "node-2"}) {
    ASSERT_TRUE(srv.create(k8s::Resource<k8s::Node>::info(), object("v1", "Node", n)).ok());
    ASSERT_TRUE(
        srv.create(k8s::Resource<k8s::CiliumNode>::info(), object("cilium.io/v2", "CiliumNode", n))
            .ok());
  }
  ASSERT_TRUE(srv.create(k8s::Resource<k8s::CiliumNode>::info(),
                         object("cilium.io/v2", "CiliumNode", "gone-node"))
                  .ok());
  auto cep = object("cilium.io/v2", "CiliumEndpoint", "gone-pod", "default");
  cep["status"] = {{"id", 7}, {"identity", {{"id", 300}}}};
  ASSERT_TRUE(srv.create(k8s::Resource<k8s::CiliumEndpoint>::info(), cep).ok());
  auto id = object("cilium.io/v2", "CiliumIdentity", "301");
  id["security-labels"] = {{"k8s:app", "old"}};
  ASSERT_TRUE(srv.create(k8s::Resource<k8s::CiliumIdentity>::info(), id).ok());

  op::Config oc;
  oc.cluster_pool_ipv4_cidr = {"10.9.0.0/24"};
  oc.cluster_pool_ipv4_mask_size = 24;
  oc.leader_election_identity = "op-1";
  oc.leader_election_namespace = "kube-system";
  oc.leader_election_lease_duration = 1.0;
  oc.leader_election_renew_deadline = 0.6;
  oc.leader_election_retry_period = 0.1;
  oc.identity_gc_interval = 0.2;
  oc.identity_heartbeat_timeout = 0.2;
  oc.cilium_endpoint_gc_interval = 0.2;
  oc.nodes_gc_interval = 0.2;
  oc.operator_api_serve_addr = "127.0.0.1:0";
  k8s::ClientConfig cc;
  cc.server = srv.url();
  cc.qps = 0;
  auto op = op::Operator::start(oc, cc);
  ASSERT_TRUE(op.ok()) << op.error().message();

  const auto gone = [&](const k8s::ResourceInfo& info, const std::string& ns,
                        const std::string& name) { return !srv.get(info, ns, name).has_value(); };
  EXPECT_TRUE(eventually(
      [&] { return gone(k8s::Resource<k8s::CiliumNode>::info(), "", "gone-node"); }, 15s));
  EXPECT_TRUE(eventually(
      [&] { return gone(k8s::Resource<k8s::CiliumEndpoint>::info(), "default", "gone-pod"); },
      15s));
  EXPECT_TRUE(
      eventually([&] { return gone(k8s::Resource<k8s::CiliumIdentity>::info(), "", "301"); }, 15s));
  // one node got the pool's CIDR, the other an error in its status
  auto decoded = [&](const char* n) {
    auto o = srv.get(k8s::Resource<k8s::CiliumNode>::info(), "", n);
    return o ? k8s::Resource<k8s::CiliumNode>::decode(*o)
             : Result<k8s::CiliumNode>(Error(ErrorCode::kNotFound, n));
  };
  EXPECT_TRUE(eventually(
      [&] {
        auto a = decoded("node-1"), b = decoded("node-2");
        return a.ok() && b.ok() && a->pod_cidrs.size() + b->pod_cidrs.size() == 1 &&
               (!a->operator_error.empty() || !b->operator_error.empty());
      },
      15s));
  // the Lease was created and renewed
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& r : srv.requests())
          if (r.method == "PUT" && r.path.find("/leases/") != std::string::npos) return true;
        return false;
      },
      15s));
  op->reset();
  auto rules = renderedRules("cilium-operator");
  EXPECT_FALSE(rules.namespaced.empty()) << "no Role cilium-operator";
  checkExactly(rules, srv.requests(), "cilium-operator");
}

}  // namespace
}  // namespace cilium
