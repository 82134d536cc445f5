// The /v1/service REST API over a Manager with fake maps.
#include "agent/service/api.h"

#include <gtest/gtest.h>

#include "agent/bpf/fake_map.h"

namespace cilium::service {
namespace {

class ServiceApiTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(registerRoutes(router_, mgr_).ok()); }
  api::Response call(const char* method, const std::string& path, std::string body = "") {
    return router_.dispatch(method, path, {}, std::move(body));
  }

  bpf::FakeMap<lb4_key, lb4_service> services_{"s"};
  bpf::FakeMap<lb4_slot_key, uint32_t> slots_{"sl"};
  bpf::FakeMap<uint32_t, lb4_backend> backends_{"b"};
  bpf::FakeMap<uint32_t, lb4_reverse_nat> revnat_{"r"};
  bpf::FakeMap<lb6_key, lb4_service> services6_{"s6"};
  bpf::FakeMap<uint32_t, lb6_backend> backends6_{"b6"};
  bpf::FakeMap<uint32_t, lb6_reverse_nat> revnat6_{"r6"};
  Manager mgr_{
      {&services_, &slots_, &backends_, &revnat_, nullptr, &services6_, &backends6_, &revnat6_},
      {}};
  api::Router router_;
};

constexpr const char* kSpec = R"({
  "id": 7,
  "frontend-address": {"ip": "10.96.0.10", "port": 80, "protocol": "TCP"},
  "backend-addresses": [{"ip": "10.0.1.1", "port": 8080},
                        {"ip": "10.0.1.2", "port": 8080, "state": "terminating"}],
  "flags": {"type": "ClusterIP", "sessionAffinity": true, "sessionAffinityTimeout": 60}
})";

TEST_F(ServiceApiTest, PutGetListDelete) {
  EXPECT_EQ(call("PUT", "/v1/service/7", kSpec).status, 201);
  EXPECT_EQ(call("PUT", "/v1/service/7", kSpec).status, 200);
  auto one = call("GET", "/v1/service/7");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.body["spec"]["id"], 7);
  EXPECT_EQ(one.body["spec"]["frontend-address"]["ip"], "10.96.0.10");
  EXPECT_EQ(one.body["spec"]["backend-addresses"].size(), 2u);
  EXPECT_EQ(one.body["spec"]["backend-addresses"][1]["state"], "terminating");
  EXPECT_EQ(one.body["spec"]["flags"]["sessionAffinityTimeout"], 60);
  EXPECT_EQ(one.body["status"]["realized"], one.body["spec"]);
  auto all = call("GET", "/v1/service");
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(all.body.size(), 1u);
  // The datapath has it: one frontend with one active slot.
  EXPECT_EQ(*services_.count(), 1u);
  EXPECT_EQ(*slots_.count(), 1u);
  EXPECT_EQ(call("DELETE", "/v1/service/7").status, 200);
  EXPECT_EQ(call("DELETE", "/v1/service/7").status, 404);
  EXPECT_EQ(call("GET", "/v1/service/7").status, 404);
  EXPECT_EQ(*services_.count(), 0u);
}

TEST_F(ServiceApiTest, BadInputNamesTheFieldAndChangesNothing) {
  ASSERT_EQ(call("PUT", "/v1/service/7", kSpec).status, 201);
  struct Case {
    const char* body;
    const char* field;
  } cases[] = {
      {R"({"frontend-address": {"ip": "10.96.0.10", "port": 0}})", "frontend-address.port"},
      {R"({"frontend-address": {"ip": "nope", "port": 80}})", "frontend-address.ip"},
      {R"({"frontend-address": {"ip": "10.96.0.10", "port": 80, "protocol": "SCTP"}})", "protocol"},
      {R"({"frontend-address": {"ip": "10.96.0.10", "port": 80},
           "backend-addresses": [{"ip": "10.0.1.1", "port": 70000}]})",
       "backend-addresses[0].port"},
      {R"({"frontend-address": {"ip": "10.96.0.10", "port": 80}, "flags": {"type": "HostPort"}})",
       "flags.type"},
      {R"({"id": 9, "frontend-address": {"ip": "10.96.0.10", "port": 80}})", "differs"},
      {R"({"backend-addresses": []})", "frontend-address"},
      {"not json", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    auto r = call("PUT", "/v1/service/7", c.body);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.dump().find(c.field), std::string::npos) << r.body.dump();
  }
  EXPECT_EQ(call("GET", "/v1/service/abc").status, 400);
  EXPECT_EQ(call("GET", "/v1/service/7").body["spec"]["backend-addresses"].size(), 2u);
  // A frontend with backends of the other family: refused, naming the backend.
  auto mixed = call("PUT", "/v1/service/8", R"({"frontend-address": {"ip": "fd00::1", "port": 80},
      "backend-addresses": [{"ip": "10.0.1.1", "port": 8080}]})");
  EXPECT_EQ(mixed.status, 400);
  EXPECT_NE(mixed.body.dump().find("10.0.1.1"), std::string::npos) << mixed.body.dump();
}

TEST_F(ServiceApiTest, Ipv6Frontend) {
  auto put = call("PUT", "/v1/service/9", R"({"frontend-address": {"ip": "fd00::1", "port": 80},
      "backend-addresses": [{"ip": "fd00:1::5", "port": 8080}]})");
  EXPECT_EQ(put.status, 201) << put.body.dump();
  auto one = call("GET", "/v1/service/9");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.body["spec"]["frontend-address"]["ip"], "fd00::1");
  EXPECT_EQ(one.body["spec"]["backend-addresses"][0]["ip"], "fd00:1::5");
  EXPECT_EQ(*services6_.count(), 1u);
  EXPECT_EQ(*backends6_.count(), 1u);
  EXPECT_EQ(call("DELETE", "/v1/service/9").status, 200);
  EXPECT_EQ(*services6_.count(), 0u);
}

}  // namespace
}  // namespace cilium::service
