// cilium-local-apiserver: the local cluster's API server (the fake kube-apiserver of
// deploy/local/apiserver, with real list/watch semantics) fed from a manifests directory: every
// object of the directory is created, updated and deleted in the store as the files change (the
// directory is the cluster's `kubectl apply`), the cluster's Nodes are registered, and Pods
// without spec.nodeName are scheduled round-robin over them. Agents, the operator and kubectl
// talk to it as to a kube-apiserver. Used by deploy/local/cilium-local (docs/local-cluster.md).
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "agent/common/files.h"
#include "agent/common/inet.h"
#include "agent/common/yaml.h"
#include "agent/k8s/manifests.h"
#include "deploy/local/apiserver/fake_apiserver.h"

namespace cilium::local {
namespace {

using nlohmann::json;

constexpr char kUsage[] =
    "Usage: cilium-local-apiserver [--listen HOST:PORT] [--port N] [--token T]\n"
    "           [--manifests-dir DIR] [--node NAME=IPV4[,IPV6]]... [--manifests FILE...]\n"
    "           [--token-user TOKEN=USER]... [--request-log FILE]\n"
    "  --listen HOST:PORT   where to serve (default 127.0.0.1:0, --port N: 127.0.0.1:N)\n"
    "  --manifests-dir DIR  keeps every object of DIR in the store as the files change\n"
    "  --node NAME=IPV4[,IPV6]  a Node of the cluster (its InternalIPs); Pods without spec.nodeName\n"
    "                       are scheduled round-robin over the nodes, in the order given\n"
    "  --manifests FILE...  objects created once at start\n"
    "  --token-user TOKEN=USER  a bearer token accepted as USER (the request log's user)\n"
    "  --request-log FILE   write every request (user, verb, apiGroup, resource, subresource,\n"
    "                       namespace, ...) as JSON to FILE on exit; GET /debug/requests\n"
    "                       serves the same while running\n"
    "Prints the URL on stdout once it serves; runs until SIGINT/SIGTERM.\n";

struct NodeArg {
  std::string name;
  std::string ip;
  std::string ip6;  // dual-stack nodes only
};

// What the directory holds, applied to the store: the objects it created from the directory are
// its own, so one deleted from the files is deleted from the store, while what agents and the
// operator create (CiliumNodes, identities, endpoints) is never touched.
class DirectorySync {
 public:
  DirectorySync(testing::FakeApiServer& server, std::vector<std::string> nodes)
      : server_(server), nodes_(std::move(nodes)) {}

  void apply(const std::vector<json>& objects) {
    std::lock_guard lock(mu_);
    std::map<Key, json> desired;
    for (const auto& o : objects) {
      const auto* info = k8s::findResourceByKind(o.value("kind", ""));
      if (!info) continue;
      json obj = o;
      const json& meta = obj["metadata"];
      std::string ns = info->namespaced ? meta.value("namespace", "default") : "";
      Key key{std::string(info->plural) + "." + std::string(info->group), ns,
              meta.value("name", "")};
      if (info->kind == "Pod") schedule(key, obj);
      desired[key] = std::move(obj);
    }
    for (auto& [key, obj] : desired) {
      auto old = applied_.find(key);
      if (old != applied_.end() && old->second == obj) continue;
      const auto* info = k8s::findResourceByKind(obj.value("kind", ""));
      bool exists = server_.get(*info, std::get<1>(key), std::get<2>(key)).has_value();
      auto r = exists ? server_.update(*info, obj) : server_.create(*info, obj);
      if (!r.ok()) {
        std::fprintf(stderr, "apiserver: %s %s: %s\n", exists ? "update" : "create",
                     describe(key).c_str(), r.error().message().c_str());
        continue;
      }
      std::fprintf(stderr, "apiserver: %s %s%s\n", exists ? "updated" : "created",
                   describe(key).c_str(), placement(obj).c_str());
    }
    for (const auto& [key, obj] : applied_) {
      if (desired.count(key)) continue;
      const auto* info = k8s::findResourceByKind(obj.value("kind", ""));
      if (auto st = server_.remove(*info, std::get<1>(key), std::get<2>(key)); st.ok())
        std::fprintf(stderr, "apiserver: deleted %s\n", describe(key).c_str());
    }
    applied_ = std::move(desired);
  }

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // resource, namespace, name

  static std::string describe(const Key& k) {
    const auto& [res, ns, name] = k;
    return res.substr(0, res.find('.')) + " " + (ns.empty() ? name : ns + "/" + name);
  }
  static std::string placement(const json& obj) {
    if (obj.value("kind", "") != "Pod") return "";
    return " on " + obj["spec"].value("nodeName", std::string("?"));
  }

  // The scheduler: a Pod keeps the node it was given first; a new one without spec.nodeName
  // gets the next node in turn. A Pod naming a node that does not exist is served as written
  // (it stays unplaced, as it would stay Pending).
  void schedule(const Key& key, json& pod) {
    if (nodes_.empty() || !pod.contains("spec") || !pod["spec"].is_object()) return;
    if (!pod["spec"].value("nodeName", std::string()).empty()) return;
    auto it = placed_.find(key);
    if (it == placed_.end()) it = placed_.emplace(key, nodes_[next_++ % nodes_.size()]).first;
    pod["spec"]["nodeName"] = it->second;
  }

  testing::FakeApiServer& server_;
  std::vector<std::string> nodes_;
  std::mutex mu_;
  std::map<Key, json> applied_;
  std::map<Key, std::string> placed_;
  size_t next_ = 0;
};

int run(int argc, char** argv) {
  testing::FakeApiServer::Options opts;
  std::string host = "127.0.0.1", dir, request_log;
  int port = 0;
  std::vector<std::string> files;
  std::vector<NodeArg> nodes;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--port") {
      port = std::atoi(value().c_str());
    } else if (a == "--listen") {
      std::string v = value();
      size_t colon = v.rfind(':');
      if (colon == std::string::npos) {
        std::fprintf(stderr, "--listen '%s': HOST:PORT\n", v.c_str());
        return 2;
      }
      host = v.substr(0, colon);
      port = std::atoi(v.c_str() + colon + 1);
    } else if (a == "--token") {
      opts.token = value();
    } else if (a == "--token-user") {
      std::string v = value();
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
        std::fprintf(stderr, "--token-user '%s': TOKEN=USER\n", v.c_str());
        return 2;
      }
      opts.users[v.substr(0, eq)] = v.substr(eq + 1);
    } else if (a == "--request-log") {
      request_log = value();
      if (request_log.empty()) {
        std::fputs("--request-log: needs a file\n", stderr);
        return 2;
      }
    } else if (a == "--manifests-dir") {
      dir = value();
    } else if (a == "--node") {
      // NAME=IPV4 or, for a dual-stack node, NAME=IPV4,IPV6 (kubelet's --node-ip pair).
      std::string v = value();
      size_t eq = v.find('=');
      size_t comma = v.find(',', eq == std::string::npos ? 0 : eq);
      std::string v4 = eq == std::string::npos ? "" : v.substr(eq + 1, comma - eq - 1);
      std::string v6 = comma == std::string::npos ? "" : v.substr(comma + 1);
      auto ip = IpAddr::parse(v4);
      auto ip6 = v6.empty() ? Result<IpAddr>(IpAddr::parse("::")) : IpAddr::parse(v6);
      if (eq == std::string::npos || eq == 0 || !ip.ok() || !ip->isV4() || !ip6.ok() ||
          ip6->isV4()) {
        std::fprintf(stderr, "--node '%s': NAME=IPV4 or NAME=IPV4,IPV6\n", v.c_str());
        return 2;
      }
      nodes.push_back({v.substr(0, eq), v4, v6});
    } else if (a == "--manifests") {
      while (i + 1 < argc && argv[i + 1][0] != '-') files.push_back(argv[++i]);
    } else {
      std::fputs(kUsage, stderr);
      return 2;
    }
  }
  testing::FakeApiServer server(opts);
  for (const auto& f : files) {
    auto text = readFile(f);
    if (!text.ok()) {
      std::fprintf(stderr, "%s\n", text.error().toString().c_str());
      return 1;
    }
    auto docs = yaml::toJson(*text);
    if (!docs.ok()) {
      std::fprintf(stderr, "%s: %s\n", f.c_str(), docs.error().message().c_str());
      return 1;
    }
    for (auto& d : *docs) {
      const auto* info = k8s::findResourceByKind(d.value("kind", ""));
      if (!info) {
        std::fprintf(stderr, "%s: skipping kind %s\n", f.c_str(), d.value("kind", "?").c_str());
        continue;
      }
      if (auto r = server.create(*info, d); !r.ok()) {
        std::fprintf(stderr, "%s: %s\n", f.c_str(), r.error().message().c_str());
        return 1;
      }
    }
  }
  // The Nodes, as each kubelet registers its own: the agents take their InternalIP from here.
  std::vector<std::string> node_names;
  for (const auto& n : nodes) {
    json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata", {{"name", n.name}, {"labels", {{"kubernetes.io/hostname", n.name}}}}},
                 {"status",
                  {{"addresses",
                    {{{"type", "InternalIP"}, {"address", n.ip}},
                     {{"type", "Hostname"}, {"address", n.name}}}}}}};
    if (!n.ip6.empty())
      node["status"]["addresses"].insert(node["status"]["addresses"].begin() + 1,
                                         json::object({{"type", "InternalIP"}, {"address", n.ip6}}));
    if (auto r = server.create(k8s::Resource<k8s::Node>::info(), node); !r.ok()) {
      std::fprintf(stderr, "node %s: %s\n", n.name.c_str(), r.error().message().c_str());
      return 1;
    }
    node_names.push_back(n.name);
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  DirectorySync sync(server, node_names);
  std::unique_ptr<k8s::ManifestSource> source;
  if (!dir.empty()) {
    k8s::ManifestOptions mopts;
    mopts.on_publish = [&sync](const std::vector<json>& objects) { sync.apply(objects); };
    source = std::make_unique<k8s::ManifestSource>(dir, mopts);
    // Read once before serving, so the first list already holds the directory.
    if (auto st = source->start(); !st.ok()) {
      std::fprintf(stderr, "--manifests-dir: %s\n", st.error().toString().c_str());
      return 1;
    }
    for (const auto& [file, problem] : source->errors())
      std::fprintf(stderr, "apiserver: %s: %s\n", file.c_str(), problem.c_str());
  }
  if (auto st = server.start(host, port); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.error().toString().c_str());
    return 1;
  }
  std::printf("%s\n", server.url().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  if (source) source->stop();
  server.stop();
  if (!request_log.empty()) {
    if (auto st = writeFileAtomic(request_log, server.requestLogJson().dump(2) + "\n", 0644);
        !st.ok()) {
      std::fprintf(stderr, "--request-log: %s\n", st.error().toString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace cilium::local

int main(int argc, char** argv) { return cilium::local::run(argc, argv); }
