// cilium-local-apiserver (deploy/local/apiserver_main.cc), the local cluster's store, as a
// process on loopback: it registers the Nodes it is given, serves the manifests directory's
// objects, places Pods without spec.nodeName round-robin (and keeps a Pod's node), follows the
// files (a changed object is updated, a removed one deleted), and never deletes what a client
// created itself (a CiliumNode).
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "tests/harness/eventually.h"

namespace cilium {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using cilium::testing::eventually;

std::string pod(const std::string& name, const std::string& node = "") {
  std::string out = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
                    ", namespace: default, labels: {app: " + name + "}}\nspec:\n";
  if (!node.empty()) out += "  nodeName: " + node + "\n";
  return out + "  containers: [{name: main, image: x}]\n";
}

class LocalApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("cilium-local-apiserver-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/m");
    write("pods.yaml", pod("a") + pod("b") + pod("c", "node-1") + pod("d"));
    SpawnOptions o;
    o.stdout_path = dir_ + "/url";
    o.stderr_path = dir_ + "/log";
    auto p = spawn({CILIUM_LOCAL_APISERVER_BINARY, "--listen", "127.0.0.1:0", "--manifests-dir",
                    dir_ + "/m", "--node", "node-1=172.30.0.1", "--node", "node-2=172.30.0.2"},
                   o);
    ASSERT_TRUE(p.ok()) << p.error().toString();
    server_ = std::move(*p);
    ASSERT_TRUE(eventually([&] {
      return readFile(dir_ + "/url").valueOr("").find("http://") != std::string::npos;
    })) << readFile(dir_ + "/log").valueOr("");
    std::string url = readFile(dir_ + "/url").valueOr("");
    port_ = std::stoi(url.substr(url.rfind(':') + 1));
  }
  void TearDown() override {
    server_.stop();
    fs::remove_all(dir_);
  }

  void write(const std::string& name, const std::string& text) {
    // Aside, then renamed: the directory reader never sees half a file.
    std::ofstream(dir_ + "/m/." + name) << text;
    fs::rename(dir_ + "/m/." + name, dir_ + "/m/" + name);
  }
  json get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Get(path.c_str());
    if (!r || r->status != 200) return json();
    return json::parse(r->body);
  }
  std::map<std::string, std::string> placement() {
    std::map<std::string, std::string> out;
    json pods = get("/api/v1/pods");
    for (const auto& p : pods.value("items", json::array()))
      out[p["metadata"]["name"]] = p["spec"].value("nodeName", "");
    return out;
  }

  std::string dir_;
  int port_ = 0;
  Process server_;
};

TEST_F(LocalApiServerTest, ServesTheDirectoryAndSchedulesPods) {
  json nodes = get("/api/v1/nodes");
  ASSERT_EQ(nodes["items"].size(), 2u) << nodes.dump();
  EXPECT_EQ(nodes["items"][0]["metadata"]["name"], "node-1");
  EXPECT_EQ(nodes["items"][0]["status"]["addresses"][0]["address"], "172.30.0.1");
  // In file order, round-robin over the nodes; a Pod's own nodeName is kept.
  std::map<std::string, std::string> want = {
      {"a", "node-1"}, {"b", "node-2"}, {"c", "node-1"}, {"d", "node-1"}};
  EXPECT_EQ(placement(), want);

  // A CiliumNode an agent created stays whatever the files do.
  httplib::Client c("127.0.0.1", port_);
  auto created = c.Post("/apis/cilium.io/v2/ciliumnodes",
                        R"({"apiVersion":"cilium.io/v2","kind":"CiliumNode",)"
                        R"("metadata":{"name":"node-1"},"spec":{}})",
                        "application/json");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;

  // A change: b gets a label, d goes, e comes (the next node in turn); a keeps its node.
  std::string b2 = pod("b");
  b2.replace(b2.find("app: b"), 6, "app: b, v: \"2\"");
  write("pods.yaml", pod("a") + b2 + pod("c", "node-1") + pod("e"));
  want = {{"a", "node-1"}, {"b", "node-2"}, {"c", "node-1"}, {"e", "node-2"}};
  ASSERT_TRUE(eventually([&] { return placement() == want; }, 10s))
      << readFile(dir_ + "/log").valueOr("");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/b")["metadata"]["labels"].value("v", ""), "2");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/b")["spec"].value("nodeName", ""), "node-2");
  write("svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n"
        "spec: {clusterIP: 10.96.0.9, selector: {app: a}, ports: [{port: 80}]}\n");
  ASSERT_TRUE(eventually([&] { return !get("/api/v1/namespaces/default/services/s").is_null(); }));
  fs::remove(dir_ + "/m/svc.yaml");
  ASSERT_TRUE(eventually([&] { return get("/api/v1/namespaces/default/services/s").is_null(); }));
  EXPECT_FALSE(get("/apis/cilium.io/v2/ciliumnodes/node-1").is_null());

  // A broken file keeps what it held before (the agent's manifests rules).
  write("pods.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n");
  std::this_thread::sleep_for(300ms);  // nothing to wait for: the point is that nothing changes
  EXPECT_EQ(placement(), want);
}

TEST_F(LocalApiServerTest, RejectsBadArguments) {
  auto r = run({CILIUM_LOCAL_APISERVER_BINARY, "--node", "node-1"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->err.find("NAME=IPV4"), std::string::npos) << r->err;
  r = run({CILIUM_LOCAL_APISERVER_BINARY, "--manifests-dir", "/nonexistent/dir"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 1);
}

}  // namespace
}  // namespace cilium
