// The contract (api/v1/openapi.yaml) against the code: every path is routed, every $ref
// resolves, and every C++ model writes exactly the fields its schema declares, with the
// declared JSON types.
#include <set>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "agent/daemon/daemon.h"
#include "api/model/model.h"

namespace cilium::api {
namespace {

YAML::Node contract() {
  static YAML::Node doc = YAML::LoadFile(std::string(CILIUM_SOURCE_DIR) + "/api/v1/openapi.yaml");
  return doc;
}

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

YAML::Node resolve(YAML::Node schema) {
  while (schema["$ref"]) {
    std::string ref = schema["$ref"].as<std::string>();
    const std::string prefix = "#/definitions/";
    EXPECT_EQ(ref.rfind(prefix, 0), 0u) << ref;
    schema = contract()["definitions"][ref.substr(prefix.size())];
    EXPECT_TRUE(schema.IsDefined()) << "dangling " << ref;
    if (!schema.IsDefined()) break;
  }
  return schema;
}

// Checks `j` against `schema`: types, no undeclared fields, required fields present and, since
// the value is fully filled, every declared field present.
void check(const Json& j, YAML::Node schema, const std::string& path) {
  schema = resolve(schema);
  std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
  if (schema["properties"] || type == "object") {
    ASSERT_TRUE(j.is_object()) << path << ": expected an object, got " << j.dump();
    if (schema["properties"]) {
      for (const auto& [k, v] : j.items()) {
        auto prop = schema["properties"][k];
        ASSERT_TRUE(prop.IsDefined()) << path << "." << k << ": not in the contract";
        check(v, prop, path + "." + k);
      }
      for (const auto& p : schema["properties"]) {
        EXPECT_TRUE(j.contains(p.first.as<std::string>()))
            << path << "." << p.first.as<std::string>() << ": in the contract but not in the model";
      }
    } else if (schema["additionalProperties"] && schema["additionalProperties"].size() > 0) {
      for (const auto& [k, v] : j.items()) check(v, schema["additionalProperties"], path + "." + k);
    }
    if (schema["required"]) {
      for (const auto& r : schema["required"]) {
        EXPECT_TRUE(j.contains(r.as<std::string>()))
            << path << ": required " << r.as<std::string>();
      }
    }
  } else if (type == "array") {
    ASSERT_TRUE(j.is_array()) << path;
    for (size_t i = 0; i < j.size(); i++)
      check(j[i], schema["items"], path + "[" + std::to_string(i) + "]");
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
  YAML::Node schema = contract()["definitions"][definition];
  ASSERT_TRUE(schema.IsDefined()) << definition;
  check(j, schema, definition);
}

TEST(ContractTest, IsSwagger2WithBasePathV1) {
  EXPECT_EQ(contract()["swagger"].as<std::string>(), "2.0");
  EXPECT_EQ(contract()["basePath"].as<std::string>(), "/v1");
}

TEST(ContractTest, EveryPathIsRoutedAndEveryRouteIsInTheContract) {
  std::set<std::pair<std::string, std::string>> in_contract;
  for (const auto& p : contract()["paths"]) {
    std::string path = "/v1" + p.first.as<std::string>();
    for (const auto& m : p.second) {
      std::string method = m.first.as<std::string>();
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
  std::function<void(const YAML::Node&)> walk = [&](const YAML::Node& n) {
    if (n.IsMap()) {
      for (const auto& kv : n) {
        if (kv.first.as<std::string>() == "$ref") {
          std::string ref = kv.second.as<std::string>();
          if (ref.rfind("#/parameters/", 0) == 0) {
            EXPECT_TRUE(contract()["parameters"][ref.substr(13)].IsDefined()) << ref;
          } else {
            resolve(n);
          }
        } else {
          walk(kv.second);
        }
      }
    } else if (n.IsSequence()) {
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
  checkModel<StatusResponse>("StatusResponse");
  checkModel<NodeAddressingElement>("NodeAddressingElement");
  checkModel<NodeAddressing>("NodeAddressing");
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
  auto names = [](const YAML::Node& n) {
    std::vector<std::string> out;
    for (const auto& e : resolve(n)["enum"]) out.push_back(e.as<std::string>());
    return out;
  };
  auto ours = [](auto e) {
    std::vector<std::string> out;
    for (const auto& [v, n] : EnumNames<decltype(e)>::kNames) out.emplace_back(n);
    return out;
  };
  auto defs = contract()["definitions"];
  EXPECT_EQ(names(defs["EndpointState"]), ours(EndpointState{}));
  EXPECT_EQ(names(defs["EndpointHealthStatus"]), ours(EndpointHealthStatus{}));
  EXPECT_EQ(names(defs["EndpointPolicyEnabled"]), ours(EndpointPolicyEnabled{}));
  EXPECT_EQ(names(defs["Status"]["properties"]["state"]), ours(StatusState{}));
}

}  // namespace
}  // namespace cilium::api
