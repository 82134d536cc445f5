// The client over HTTPS: the cluster CA from kubeconfig (file or inline data), client
// certificates, verification failures, insecure-skip-tls-verify; an informer syncing over TLS.
// Certificates are made with the openssl CLI for each run.
#include <gtest/gtest.h>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/reflector.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/temp_dir.h"

namespace cilium::k8s {
namespace {

using namespace std::chrono_literals;

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += t[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    for (int s : {18, 12, 6}) out += t[(v >> s) & 63];
    out += "=";
  }
  return out;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ssl = [&](std::vector<std::string> args) {
      args.insert(args.begin(), "openssl");
      auto r = runChecked(args);
      ASSERT_TRUE(r.ok()) << r.error().message();
    };
    std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                   "-nodes"};
    auto req = [&](const std::string& name, const std::string& cn, bool x509) {
      std::vector<std::string> a = {"req"};
      if (x509) a.push_back("-x509");
      a.insert(a.end(), ec.begin(), ec.end());
      a.insert(a.end(), {"-keyout", dir.file(name + ".key"), "-out",
                         dir.file(name + (x509 ? ".crt" : ".csr")), "-subj", "/CN=" + cn});
      if (x509) a.insert(a.end(), {"-days", "1"});
      ssl(a);
    };
    auto sign = [&](const std::string& name, const std::string& ext) {
      std::vector<std::string> a = {"x509",
                                    "-req",
                                    "-in",
                                    dir.file(name + ".csr"),
                                    "-CA",
                                    dir.file("ca.crt"),
                                    "-CAkey",
                                    dir.file("ca.key"),
                                    "-CAcreateserial",
                                    "-out",
                                    dir.file(name + ".crt"),
                                    "-days",
                                    "1"};
      if (!ext.empty()) a.insert(a.end(), {"-extfile", ext});
      ssl(a);
    };
    req("ca", "test-ca", true);
    req("other-ca", "other-ca", true);
    req("server", "127.0.0.1", false);
    ASSERT_TRUE(writeFileAtomic(dir.file("san.ext"), "subjectAltName=IP:127.0.0.1\n").ok());
    sign("server", dir.file("san.ext"));
    req("client", "cilium-agent", false);
    sign("client", "");
    testing::FakeApiServer::Options o;
    o.tls_cert_file = dir.file("server.crt");
    o.tls_key_file = dir.file("server.key");
    o.client_ca_file = dir.file("ca.crt");
    server = std::make_unique<testing::FakeApiServer>(o);
    ASSERT_TRUE(server->start().ok());
    ASSERT_TRUE(server->create(Resource<Pod>::info(), {{"metadata", {{"name", "p"}}}}).ok());
  }
  std::string kubeconfig(bool inline_data, const std::string& ca = "ca") {
    std::string cluster =
        inline_data ? "certificate-authority-data: " + base64(*readFile(dir.file(ca + ".crt")))
                    : "certificate-authority: " + ca + ".crt";
    std::string user =
        inline_data ? "client-certificate-data: " + base64(*readFile(dir.file("client.crt"))) +
                          "\n    client-key-data: " + base64(*readFile(dir.file("client.key")))
                    : "client-certificate: client.crt\n    client-key: client.key";
    return "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
           "clusters:\n- name: k\n  cluster:\n    server: " +
           server->url() + "\n    " + cluster + "\nusers:\n- name: u\n  user:\n    " + user + "\n";
  }
  Result<Response> listPods(const ClientConfig& cfg) {
    auto c = Client::create(cfg);
    if (!c.ok()) return c.error();
    return (*c)->get("/api/v1/pods");
  }
  testing::TempDir dir;
  std::unique_ptr<testing::FakeApiServer> server;
};

TEST_F(TlsTest, KubeconfigWithFilesAndWithInlineData) {
  for (bool inline_data : {false, true}) {
    ASSERT_TRUE(writeFileAtomic(dir.file("config"), kubeconfig(inline_data)).ok());
    auto cfg = loadKubeconfig(dir.file("config"));
    ASSERT_TRUE(cfg.ok()) << cfg.error().message();
    auto res = listPods(*cfg);
    ASSERT_TRUE(res.ok()) << res.error().message();
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->body.find("\"name\":\"p\""), std::string::npos);
  }
}

TEST_F(TlsTest, VerificationFailuresAndInsecureSkip) {
  ASSERT_TRUE(writeFileAtomic(dir.file("config"), kubeconfig(false)).ok());
  auto good = *loadKubeconfig(dir.file("config"));
  // No client certificate: the server refuses the handshake.
  ClientConfig no_cert = good;
  no_cert.client_cert_pem.clear();
  no_cert.client_key_pem.clear();
  auto r = listPods(no_cert);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  // A CA that did not sign the server certificate.
  ClientConfig wrong_ca = good;
  wrong_ca.ca_pem = *readFile(dir.file("other-ca.crt"));
  r = listPods(wrong_ca);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("SSL"), std::string::npos) << r.error().message();
  // insecure-skip-tls-verify accepts the server anyway.
  wrong_ca.insecure_skip_tls_verify = true;
  r = listPods(wrong_ca);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
  // Garbage PEM is a configuration error, not a crash.
  ClientConfig bad = good;
  bad.ca_pem = "not a certificate";
  auto c = Client::create(bad);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "certificate-authority: no PEM certificate");
}

TEST_F(TlsTest, InformerSyncsAndWatchesOverTls) {
  ASSERT_TRUE(writeFileAtomic(dir.file("config"), kubeconfig(true)).ok());
  auto cfg = loadKubeconfig(dir.file("config"));
  ASSERT_TRUE(cfg.ok());
  auto client = Client::create(*cfg);
  ASSERT_TRUE(client.ok());
  Store<Pod> store;
  Informer<Pod> inf(**client, store);
  inf.start();
  ASSERT_TRUE(store.waitForSync(10s));
  EXPECT_EQ(store.size(), 1u);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server->openWatches() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(server->create(Resource<Pod>::info(), {{"metadata", {{"name", "q"}}}}).ok());
  while (!store.get("default", "q") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(store.get("default", "q").has_value());
}

}  // namespace
}  // namespace cilium::k8s
