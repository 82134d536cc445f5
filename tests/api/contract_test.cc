// The contract (api/v1/openapi.yaml) against the code: every path is routed, every $ref
// resolves, and every C++ model writes exactly the fields its schema declares, with the
// declared JSON types.
#include <set>

#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/yaml.h"
#include "agent/daemon/daemon.h"
#include "api/model/model.h"

namespace cilium::api {
namespace {

// The contract as JSON, read with the project's YAML reader (libyaml).
const Json& contract() {
  static const Json doc = [] {
    auto text = readFile(std::string(CILIUM_SOURCE_DIR) + "/api/v1/openapi.yaml");
    EXPECT_TRUE(text.ok()) << text.error().toString();
    auto docs = yaml::toJson(text.ok() ? *text : "");
    EXPECT_TRUE(docs.ok() && docs->size() == 1) << (docs.ok() ? "" : docs.error().toString());
    return docs.ok() && docs->size() == 1 ? (*docs)[0] : Json::object();
  }();
  return doc;
}

// A member of an object, or null (YAML's undefined node).
Json at(const Json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key)) return nullptr;
  return j.at(key);
}

// A scalar as text (enum names and versions as written).
std::string text(const Json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

// Sets every field of a model (recursively) to a non-empty value.
struct Filler {
  template <typename F>
  void operator()(std::string_view, F& f) {
    fill(f);
  }
  template <typename F>
  void required(std::string_view, F& f) {
    fill(f);
  }
  template <typename F>
  void fill(F& f) {
    if constexpr (std::is_same_v<F, std::string>) {
      f = "x";
    } else if constexpr (std::is_same_v<F, bool>) {
      f = true;
    } else if constexpr (std::is_integral_v<F>) {
      f = 1;
    } else if constexpr (std::is_floating_point_v<F>) {
      f = 0.5;
    } else if constexpr (std::is_same_v<F, Json>) {
      f = Json::object({{"any", 1}});
    } else if constexpr (ApiEnum<F>) {
      f = EnumNames<F>::kNames[0].first;
    } else if constexpr (Model<F>) {
      F::fields(f, *this);
    } else if constexpr (requires {
                           f.emplace();
                           *f;
                         }) {
      f.emplace();
      fill(*f);
    } else if constexpr (requires { typename F::mapped_type; }) {
      typename F::mapped_type v{};
      fill(v);
      f.emplace("k", std::move(v));
    } else {
      typename F::value_type v{};
      fill(v);
      f.push_back(std::move(v));
    }
  }
};

Json resolve(Json schema) {
  while (!at(schema, "$ref").is_null()) {
    std::string ref = text(at(schema, "$ref"));
    const std::string prefix = "#/definitions/";
    EXPECT_EQ(ref.rfind(prefix, 0), 0u) << ref;
    schema = at(at(contract(), "definitions"), ref.substr(prefix.size()));
    EXPECT_FALSE(schema.is_null()) << "dangling " << ref;
    if (schema.is_null()) break;
  }
  return schema;
}

// Checks `j` against `schema`: types, no undeclared fields, required fields present and, since
// the value is fully filled, every declared field present.
void check(const Json& j, Json schema, const std::string& path) {
  schema = resolve(schema);
  std::string type = at(schema, "type").is_null() ? "" : text(at(schema, "type"));
  Json properties = at(schema, "properties");
  Json additional = at(schema, "additionalProperties");
  if (!properties.is_null() || type == "object") {
    ASSERT_TRUE(j.is_object()) << path << ": expected an object, got " << j.dump();
    if (!properties.is_null()) {
      for (const auto& [k, v] : j.items()) {
        auto prop = at(properties, k);
        ASSERT_FALSE(prop.is_null()) << path << "." << k << ": not in the contract";
        check(v, prop, path + "." + k);
      }
      for (const auto& [name, p] : properties.items()) {
        EXPECT_TRUE(j.contains(name)) << path << "." << name << ": in the contract but not in the model";
      }
    } else if (additional.is_object() && !additional.empty()) {
      for (const auto& [k, v] : j.items()) check(v, additional, path + "." + k);
    }
    const Json required = at(schema, "required");
    for (const auto& r : required) {
      EXPECT_TRUE(j.contains(text(r))) << path << ": required " << text(r);
    }
  } else if (type == "array") {
    ASSERT_TRUE(j.is_array()) << path;
    for (size_t i = 0; i < j.size(); i++)
      check(j[i], at(schema, "items"), path + "[" + std::to_string(i) + "]");
  } else if (type == "string") {
    EXPECT_TRUE(j.is_string()) << path << ": " << j.dump();
  } else if (type == "integer") {
    EXPECT_TRUE(j.is_number_integer()) << path << ": " << j.dump();
  } else if (type == "number") {
    EXPECT_TRUE(j.is_number()) << path << ": " << j.dump();
  } else if (type == "boolean") {
    EXPECT_TRUE(j.is_boolean()) << path << ": " << j.dump();
  } else {
    ADD_FAILURE() << path << ": schema without a type";
  }
}

template <typename T>
void checkModel(const std::string& definition) {
  SCOPED_TRACE(definition);
  T value{};
  Filler f;
  T::fields(value, f);
  Json j = encode(value);
  Json schema = at(at(contract(), "definitions"), definition);
  ASSERT_FALSE(schema.is_null()) << definition;
  check(j, schema, definition);
}

TEST(ContractTest, IsSwagger2WithBasePathV1) {
  EXPECT_EQ(at(contract(), "swagger"), "2.0");
  EXPECT_EQ(at(contract(), "basePath"), "/v1");
}

TEST(ContractTest, EveryPathIsRoutedAndEveryRouteIsInTheContract) {
  std::set<std::pair<std::string, std::string>> in_contract;
  const Json paths = at(contract(), "paths");
  ASSERT_TRUE(paths.is_object());
  for (const auto& [p, methods] : paths.items()) {
    std::string path = "/v1" + p;
    for (const auto& [m, op] : methods.items()) {
      std::string method = m;
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
      in_contract.emplace(method, path);
    }
  }
  std::set<std::pair<std::string, std::string>> routed;
  for (const auto& r : daemon::contractRoutes())
    routed.emplace(std::string(methodName(r.method)), std::string(r.path));
  EXPECT_EQ(in_contract, routed);
}

TEST(ContractTest, EveryReferenceResolves) {
  std::function<void(const Json&)> walk = [&](const Json& n) {
    if (n.is_object()) {
      for (const auto& [k, v] : n.items()) {
        if (k == "$ref") {
          std::string ref = text(v);
          if (ref.rfind("#/parameters/", 0) == 0) {
            EXPECT_FALSE(at(at(contract(), "parameters"), ref.substr(13)).is_null()) << ref;
          } else {
            resolve(n);
          }
        } else {
          walk(v);
        }
      }
    } else if (n.is_array()) {
      for (const auto& item : n) walk(item);
    }
  };
  walk(contract());
}

TEST(ContractTest, ModelsMatchTheirSchemas) {
  checkModel<ComponentStatus>("Status");
  checkModel<K8sStatus>("K8sStatus");
  checkModel<HubbleStatus>("HubbleStatus");
  checkModel<IpamStatus>("IPAMStatus");
  checkModel<ClusterStatus>("ClusterStatus");
  checkModel<IdentityRange>("IdentityRange");
  checkModel<BpfMapProperties>("BPFMapProperties");
  checkModel<BpfMapStatus>("BPFMapStatus");
  checkModel<CniChainingStatus>("CNIChainingStatus");
  checkModel<Routing>("Routing");
  checkModel<StatusResponse>("StatusResponse");
  checkModel<NodeAddressingElement>("NodeAddressingElement");
  checkModel<NodeAddressing>("NodeAddressing");
  checkModel<NodeElement>("NodeElement");
  checkModel<ClusterNodeStatus>("ClusterNodeStatus");
  checkModel<DaemonConfigurationSpec>("DaemonConfigurationSpec");
  checkModel<DaemonConfigurationStatus>("DaemonConfigurationStatus");
  checkModel<DaemonConfiguration>("DaemonConfiguration");
  checkModel<AddressPair>("AddressPair");
  checkModel<EndpointDatapathConfiguration>("EndpointDatapathConfiguration");
  checkModel<EndpointChangeRequest>("EndpointChangeRequest");
  checkModel<LabelConfigurationSpec>("LabelConfigurationSpec");
  checkModel<LabelConfigurationStatus>("LabelConfigurationStatus");
  checkModel<LabelConfiguration>("LabelConfiguration");
  checkModel<EndpointConfigurationSpec>("EndpointConfigurationSpec");
  checkModel<EndpointIdentifiers>("EndpointIdentifiers");
  checkModel<Identity>("Identity");
  checkModel<FrontendAddress>("FrontendAddress");
  checkModel<BackendAddress>("BackendAddress");
  checkModel<ServiceSpec>("ServiceSpec");
  checkModel<ServiceStatus>("ServiceStatus");
  checkModel<Service>("Service");
  checkModel<EndpointNetworking>("EndpointNetworking");
  checkModel<EndpointPolicy>("EndpointPolicy");
  checkModel<EndpointPolicyStatus>("EndpointPolicyStatus");
  checkModel<EndpointStatusChange>("EndpointStatusChange");
  checkModel<EndpointHealth>("EndpointHealth");
  checkModel<Port>("Port");
  checkModel<EndpointStatus>("EndpointStatus");
  checkModel<Endpoint>("Endpoint");
  checkModel<IpamAddressResponse>("IPAMAddressResponse");
  checkModel<IpamResponse>("IPAMResponse");
  checkModel<Policy>("Policy");
  checkModel<SelectorIdentityMapping>("SelectorIdentityMapping");
  checkModel<BpfMapEntry>("BPFMapEntry");
  checkModel<BpfMap>("BPFMap");
  checkModel<BpfMapList>("BPFMapList");
  checkModel<DebugInfo>("DebugInfo");
  checkModel<MonitorTuple>("MonitorTuple");
  checkModel<MonitorEvent>("MonitorEvent");
}

TEST(ContractTest, EnumsMatch) {
  auto names = [](const Json& n) {
    std::vector<std::string> out;
    const Json values = at(resolve(n), "enum");
    for (const auto& e : values) out.push_back(text(e));
    return out;
  };
  auto ours = [](auto e) {
    std::vector<std::string> out;
    for (const auto& [v, n] : EnumNames<decltype(e)>::kNames) out.emplace_back(n);
    return out;
  };
  auto defs = at(contract(), "definitions");
  EXPECT_EQ(names(at(defs, "EndpointState")), ours(EndpointState{}));
  EXPECT_EQ(names(at(defs, "EndpointHealthStatus")), ours(EndpointHealthStatus{}));
  EXPECT_EQ(names(at(defs, "EndpointPolicyEnabled")), ours(EndpointPolicyEnabled{}));
  EXPECT_EQ(names(at(at(at(defs, "Status"), "properties"), "state")), ours(StatusState{}));
}

}  // namespace
}  // namespace cilium::api
