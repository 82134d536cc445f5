// The k8s client's request path against the fake apiserver on loopback, side by side: idle
// keep-alive connections reused (k8s::ClientConfig::idle_connections = 8, the default) vs a
// new connection per request (0, the client before), over HTTP and HTTPS (a self-signed
// certificate made with the openssl CLI). Sequential GETs of one object (latency p50/p99) and
// 4 threads issuing GETs (requests/s). The client's rate limit is off.
//
//   k8s_client_bench [--requests N]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "agent/common/files.h"
#include "agent/common/subprocess.h"
#include "agent/k8s/client.h"
#include "agent/k8s/resources.h"
#include "tests/fakes/fake_apiserver.h"
#include "tests/harness/temp_dir.h"

using namespace cilium;
using Clock = std::chrono::steady_clock;

namespace {

struct Row {
  double p50_us = 0, p99_us = 0, sequential_rps = 0, parallel_rps = 0;
};

Row measure(const std::string& url, const std::string& ca_pem, int idle, int requests) {
  k8s::ClientConfig cfg;
  cfg.server = url;
  cfg.ca_pem = ca_pem;
  cfg.qps = 0;
  cfg.idle_connections = idle;
  auto client = k8s::Client::create(cfg);
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.error().message().c_str());
    std::exit(1);
  }
  const std::string path = "/api/v1/namespaces/default/pods/bench";
  auto get = [&] {
    auto r = (*client)->get(path);
    if (!r.ok() || r->status != 200) {
      std::fprintf(stderr, "GET failed: %s\n",
                   r.ok() ? std::to_string(r->status).c_str() : r.error().message().c_str());
      std::exit(1);
    }
  };
  Row row;
  std::vector<double> us;
  us.reserve(requests);
  auto start = Clock::now();
  for (int i = 0; i < requests; i++) {
    auto t0 = Clock::now();
    get();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(us.begin(), us.end());
  row.p50_us = us[us.size() / 2];
  row.p99_us = us[us.size() * 99 / 100];
  row.sequential_rps = requests / secs;

  std::atomic<int> left{requests};
  std::vector<std::thread> threads;
  start = Clock::now();
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&] {
      while (left.fetch_sub(1) > 0) get();
    });
  for (auto& t : threads) t.join();
  row.parallel_rps = requests / std::chrono::duration<double>(Clock::now() - start).count();
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 2000;
  for (int i = 1; i + 1 < argc; i++)
    if (!std::strcmp(argv[i], "--requests")) requests = std::atoi(argv[i + 1]);

  testing::TempDir dir;
  auto ssl = runChecked({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir.file("tls.key"),
                         "-out", dir.file("tls.crt"), "-subj", "/CN=127.0.0.1", "-addext",
                         "subjectAltName=IP:127.0.0.1", "-days", "1"});
  if (!ssl.ok()) {
    std::fprintf(stderr, "openssl: %s\n", ssl.error().message().c_str());
    return 1;
  }

  std::printf("k8s client: %d GETs of one Pod per row (sequential, then 4 threads)\n", requests);
  std::printf("%-6s %-26s %9s %9s %12s %12s\n", "scheme", "connections", "p50 us", "p99 us",
              "seq req/s", "4-thr req/s");
  for (bool tls : {false, true}) {
    testing::FakeApiServer::Options opts;
    if (tls) {
      opts.tls_cert_file = dir.file("tls.crt");
      opts.tls_key_file = dir.file("tls.key");
    }
    testing::FakeApiServer server(opts);
    if (auto st = server.start(); !st.ok()) {
      std::fprintf(stderr, "fake apiserver: %s\n", st.error().message().c_str());
      return 1;
    }
    nlohmann::json pod = {{"apiVersion", "v1"},
                          {"kind", "Pod"},
                          {"metadata", {{"name", "bench"}, {"namespace", "default"}}}};
    if (!server.create(k8s::Resource<k8s::Pod>::info(), pod).ok()) return 1;
    std::string ca = tls ? *readFile(dir.file("tls.crt")) : std::string();
    for (int idle : {0, 8}) {
      Row r = measure(server.url(), ca, idle, requests);
      std::printf("%-6s %-26s %9.0f %9.0f %12.0f %12.0f\n", tls ? "https" : "http",
                  idle == 0 ? "new per request (idle 0)" : "keep-alive (idle 8)", r.p50_us,
                  r.p99_us, r.sequential_rps, r.parallel_rps);
    }
    server.stop();
  }
  return 0;
}
