// cilium-local-manifests: what the local node tool needs to know from a manifests directory,
// read with the agent's own decoders: the Pods to create, a Pod's container command, and the
// EndpointSlices a Kubernetes control plane would publish for the Services once pods have
// addresses. The tool (deploy/local/cilium-local) calls it; it changes nothing itself.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/inet.h"
#include "agent/common/yaml.h"
#include "agent/k8s/resources.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace cilium::local {
namespace {

constexpr char kUsage[] =
    "Usage: cilium-local-manifests pods DIR                 Pods, one 'namespace/name' a line\n"
    "       cilium-local-manifests command DIR NS/NAME      the pod's first container command,\n"
    "                                                       NUL-separated (nothing if none)\n"
    "       cilium-local-manifests endpointslices DIR ADDRS EndpointSlices (a JSON List) for\n"
    "                                                       the Services with a selector; ADDRS\n"
    "                                                       has 'namespace/name ip [node]' lines\n"
    "                                                       (a line per address: a\n"
    "                                                       dual-stack pod has two)\n";

constexpr char kManagedBy[] = "cilium-local";

struct Object {
  std::string file;
  json value;
};

// Every object of every manifest file (as the manifests source reads them: *.yaml, *.yml, *.json,
// no dot-files, multi-document, `kind: List` expanded). A broken file is an error naming it.
Result<std::vector<Object>> readDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return makeError(ErrorCode::kNotFound, "{} is not a directory", dir);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename();
    std::string ext = e.path().extension();
    if (name.empty() || name[0] == '.' || !e.is_regular_file(ec)) continue;
    if (ext == ".yaml" || ext == ".yml" || ext == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<Object> out;
  for (const auto& f : files) {
    CILIUM_ASSIGN_OR_RETURN(std::string text, readFile(f));
    auto docs = yaml::toJson(text);
    if (!docs.ok()) return docs.error().withContext(fs::path(f).filename().string());
    for (auto& d : *docs) {
      if (d.is_object() && d.value("kind", "") == "List" && d.contains("items") &&
          d["items"].is_array()) {
        for (auto& item : d["items"]) out.push_back({f, item});
      } else {
        out.push_back({f, std::move(d)});
      }
    }
  }
  return out;
}

bool isKind(const json& o, std::string_view kind) {
  return o.is_object() && o.contains("kind") && o["kind"].is_string() && o["kind"] == kind;
}

template <typename T>
Result<std::vector<std::pair<T, json>>> decodeAll(const std::vector<Object>& objects) {
  std::vector<std::pair<T, json>> out;
  auto kind = k8s::Resource<T>::info().kind;
  for (const auto& o : objects) {
    if (!isKind(o.value, kind)) continue;
    auto t = k8s::Resource<T>::decode(o.value);
    if (!t.ok()) return t.error().withContext(fs::path(o.file).filename().string());
    out.emplace_back(std::move(*t), o.value);
  }
  return out;
}

std::string podKey(const k8s::Pod& p) { return p.meta.namespace_name + "/" + p.meta.name; }

int fail(const Error& e) {
  std::fprintf(stderr, "cilium-local-manifests: %s\n", e.toString().c_str());
  return 1;
}

int pods(const std::string& dir) {
  auto objects = readDir(dir);
  if (!objects.ok()) return fail(objects.error());
  auto ps = decodeAll<k8s::Pod>(*objects);
  if (!ps.ok()) return fail(ps.error());
  std::vector<std::string> keys;
  for (const auto& [p, raw] : *ps) {
    if (p.host_network) {
      std::fprintf(stderr, "cilium-local-manifests: %s uses the host network: skipped\n",
                   podKey(p).c_str());
      continue;
    }
    keys.push_back(podKey(p));
  }
  std::sort(keys.begin(), keys.end());
  for (const auto& k : keys) std::printf("%s\n", k.c_str());
  return 0;
}

int command(const std::string& dir, const std::string& key) {
  auto objects = readDir(dir);
  if (!objects.ok()) return fail(objects.error());
  auto ps = decodeAll<k8s::Pod>(*objects);
  if (!ps.ok()) return fail(ps.error());
  for (const auto& [p, raw] : *ps) {
    if (podKey(p) != key) continue;
    const json* containers =
        raw.contains("spec") && raw["spec"].is_object() && raw["spec"].contains("containers")
            ? &raw["spec"]["containers"]
            : nullptr;
    if (!containers || !containers->is_array()) return 0;
    for (size_t i = 0; i < containers->size(); ++i) {
      const json& c = (*containers)[i];
      std::vector<std::string> argv;
      for (const char* field : {"command", "args"}) {
        if (!c.is_object() || !c.contains(field)) continue;
        const json& list = c[field];
        if (!list.is_array())
          return fail(makeError(ErrorCode::kInvalidArgument,
                                "{}: spec.containers[{}].{}: must be a list of strings", key, i,
                                field));
        for (const auto& a : list) {
          if (!a.is_string())
            return fail(makeError(ErrorCode::kInvalidArgument,
                                  "{}: spec.containers[{}].{}: must be a list of strings", key, i,
                                  field));
          argv.push_back(a.get<std::string>());
        }
      }
      if (argv.empty()) continue;
      for (const auto& a : argv) std::fwrite(a.c_str(), 1, a.size() + 1, stdout);  // with NUL
      return 0;
    }
    return 0;
  }
  return fail(makeError(ErrorCode::kNotFound, "no Pod {} in {}", key, dir));
}

bool selects(const k8s::StringMap& selector, const k8s::StringMap& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// The families a Service's endpoints are published for: spec.ipFamilies, else the families of
// its ClusterIPs, else IPv4 (the cluster's first family, as the API server defaults it).
std::vector<IpFamily> serviceFamilies(const k8s::Service& svc) {
  std::vector<IpFamily> out;
  auto add = [&](IpFamily f) {
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  };
  for (const auto& f : svc.ip_families) {
    if (f == "IPv4") add(IpFamily::kV4);
    if (f == "IPv6") add(IpFamily::kV6);
  }
  if (out.empty()) {
    for (const auto& ip : svc.cluster_ips)
      if (auto a = IpAddr::parse(ip); a.ok()) add(a->family());
  }
  if (out.empty()) add(IpFamily::kV4);
  return out;
}

int endpointSlices(const std::string& dir, const std::string& addrs_file) {
  auto objects = readDir(dir);
  if (!objects.ok()) return fail(objects.error());
  auto ps = decodeAll<k8s::Pod>(*objects);
  if (!ps.ok()) return fail(ps.error());
  auto svcs = decodeAll<k8s::Service>(*objects);
  if (!svcs.ok()) return fail(svcs.error());
  auto slices = decodeAll<k8s::EndpointSlice>(*objects);
  if (!slices.ok()) return fail(slices.error());

  std::map<std::string, std::vector<IpAddr>> addr;  // pod key -> its addresses (one a family)
  std::map<std::string, std::string> node;           // pod key -> node name, when given
  std::ifstream in(addrs_file);
  if (!in) return fail(makeError(ErrorCode::kNotFound, "cannot read {}", addrs_file));
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string key, ip, node_name;
    if (!(ls >> key >> ip)) continue;
    auto a = IpAddr::parse(ip);
    if (!a.ok()) return fail(a.error().withContext(addrs_file));
    addr[key].push_back(*a);
    if (ls >> node_name) node[key] = node_name;
  }

  json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", json::array()}};
  for (const auto& entry : *svcs) {
    const k8s::Service& svc = entry.first;  // not a structured binding: clang 14 cannot capture one
    if (svc.selector.empty()) continue;
    // A slice someone else wrote for this service wins: the tool only fills in what is missing.
    bool has_own = std::any_of(slices->begin(), slices->end(), [&](const auto& s) {
      auto it = s.first.meta.labels.find("endpointslice.kubernetes.io/managed-by");
      return s.first.meta.namespace_name == svc.meta.namespace_name &&
             s.first.service_name == svc.meta.name &&
             (it == s.first.meta.labels.end() || it->second != kManagedBy);
    });
    if (has_own) continue;
    std::vector<const k8s::Pod*> members;
    for (const auto& [p, praw] : *ps) {
      if (p.meta.namespace_name == svc.meta.namespace_name && selects(svc.selector, p.meta.labels) &&
          addr.count(podKey(p)))
        members.push_back(&p);
    }
    json ports = json::array();
    for (const auto& sp : svc.ports) {
      uint16_t target = sp.port;
      if (!sp.target_port.empty()) {
        if (std::all_of(sp.target_port.begin(), sp.target_port.end(), ::isdigit)) {
          target = static_cast<uint16_t>(std::stoi(sp.target_port));
        } else {
          // A named port: the number the selected pods give that name.
          target = 0;
          for (const auto* p : members)
            for (const auto& cp : p->ports)
              if (cp.name == sp.target_port) target = cp.port;
          if (target == 0) continue;
        }
      }
      ports.push_back({{"name", sp.name}, {"port", target}, {"protocol", sp.protocol}});
    }
    // One slice per family of the Service, as the EndpointSlice controller writes them.
    for (IpFamily family : serviceFamilies(svc)) {
      json endpoints = json::array();
      for (const auto* p : members) {
        for (const IpAddr& a : addr[podKey(*p)]) {
          if (a.family() != family) continue;
          json ep = {{"addresses", {a.toString()}},
                     {"conditions", {{"ready", true}}},
                     {"targetRef",
                      {{"kind", "Pod"}, {"namespace", p->meta.namespace_name}, {"name", p->meta.name}}}};
          if (auto n = node.find(podKey(*p)); n != node.end()) ep["nodeName"] = n->second;
          endpoints.push_back(std::move(ep));
        }
      }
      const bool v4 = family == IpFamily::kV4;
      list["items"].push_back(
          {{"apiVersion", "discovery.k8s.io/v1"},
           {"kind", "EndpointSlice"},
           {"metadata",
            {{"name", svc.meta.name + "-" + kManagedBy + (v4 ? "" : "-ipv6")},
             {"namespace", svc.meta.namespace_name},
             {"labels",
              {{"kubernetes.io/service-name", svc.meta.name},
               {"endpointslice.kubernetes.io/managed-by", kManagedBy}}}}},
           {"addressType", v4 ? "IPv4" : "IPv6"},
           {"endpoints", endpoints},
           {"ports", ports}});
    }
  }
  std::printf("%s\n", list.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace cilium::local

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  using namespace cilium::local;
  if (a.size() == 2 && a[0] == "pods") return pods(a[1]);
  if (a.size() == 3 && a[0] == "command") return command(a[1], a[2]);
  if (a.size() == 3 && a[0] == "endpointslices") return endpointSlices(a[1], a[2]);
  std::fputs(kUsage, stderr);
  return 2;
}
