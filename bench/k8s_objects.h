// Synthetic cluster objects for the Kubernetes benchmarks: pods spread over 50 namespaces, 200
// apps and 100 nodes, Services selecting apps, EndpointSlices, and CiliumNetworkPolicies
// allowing one app from the next.
#pragma once

#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cilium::bench {

using nlohmann::json;

// The pod's address: 10.<100 + i/65536>.<i/256 % 256>.<i % 256> (unique for i < 2^20).
inline std::string podIp(int i) {
  return fmt::format("10.{}.{}.{}", 100 + (i >> 16), (i >> 8) & 255, i & 255);
}

inline json pod(int i) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", fmt::format("pod-{}", i)},
        {"namespace", fmt::format("ns-{}", i % 50)},
        {"labels", {{"app", fmt::format("app-{}", i % 200)}, {"tier", i % 3 ? "back" : "front"}}}}},
      {"spec",
       {{"nodeName", fmt::format("node-{}", i % 100)},
        {"containers",
         {{{"name", "c"},
           {"image", "x"},
           {"ports", {{{"name", "http"}, {"containerPort", 8080}}}}}}}}},
      {"status",
       {{"phase", "Running"},
        {"podIPs", {{{"ip", podIp(i)}}}}}}};
}

inline json service(int i) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata",
           {{"name", fmt::format("svc-{}", i)}, {"namespace", fmt::format("ns-{}", i % 50)}}},
          {"spec",
           {{"clusterIP", fmt::format("10.96.{}.{}", i >> 8, i & 255)},
            {"selector", {{"app", fmt::format("app-{}", i % 200)}}},
            {"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}}}}}};
}

inline json cnp(int i) {
  return {
      {"apiVersion", "cilium.io/v2"},
      {"kind", "CiliumNetworkPolicy"},
      {"metadata",
       {{"name", fmt::format("cnp-{}", i)}, {"namespace", fmt::format("ns-{}", i % 50)}}},
      {"spec",
       {{"endpointSelector", {{"matchLabels", {{"app", fmt::format("app-{}", i % 200)}}}}},
        {"ingress",
         {{{"fromEndpoints", {{{"matchLabels", {{"app", fmt::format("app-{}", (i + 1) % 200)}}}}}},
           {"toPorts", {{{"ports", {{{"port", "8080"}, {"protocol", "TCP"}}}}}}}}}}}}};
}

// The EndpointSlice of service i: two pods of its app.
inline json endpointSlice(int i, int pods) {
  json endpoints = json::array();
  for (int k = 0; k < 2; k++) {
    int p = (i % 200 + 200 * k) % pods;
    endpoints.push_back({{"addresses", {podIp(p)}},
                         {"conditions", {{"ready", true}}},
                         {"nodeName", fmt::format("node-{}", p % 100)}});
  }
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"name", fmt::format("svc-{}-1", i)},
            {"namespace", fmt::format("ns-{}", i % 50)},
            {"labels", {{"kubernetes.io/service-name", fmt::format("svc-{}", i)}}}}},
          {"addressType", "IPv4"},
          {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}},
          {"endpoints", endpoints}};
}

}  // namespace cilium::bench
