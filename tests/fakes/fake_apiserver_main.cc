// fake-apiserver: the test fake as a standalone server, for kubectl by hand and for scripts.
//   fake-apiserver [--port N] [--token T] [--manifests FILE...]
// Prints the URL on stdout once it serves; runs until SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/common/files.h"
#include "agent/common/yaml.h"
#include "tests/fakes/fake_apiserver.h"

int main(int argc, char** argv) {
  cilium::testing::FakeApiServer::Options opts;
  int port = 0;
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--token" && i + 1 < argc) {
      opts.token = argv[++i];
    } else if (a == "--manifests") {
      while (i + 1 < argc && argv[i + 1][0] != '-') files.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--port N] [--token T] [--manifests FILE...]\n", argv[0]);
      return 2;
    }
  }
  cilium::testing::FakeApiServer server(opts);
  for (const auto& f : files) {
    auto text = cilium::readFile(f);
    if (!text.ok()) {
      std::fprintf(stderr, "%s\n", text.error().toString().c_str());
      return 1;
    }
    auto docs = cilium::yaml::toJson(*text);
    if (!docs.ok()) {
      std::fprintf(stderr, "%s: %s\n", f.c_str(), docs.error().message().c_str());
      return 1;
    }
    for (auto& d : *docs) {
      const auto* info = cilium::k8s::findResourceByKind(d.value("kind", ""));
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
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (auto st = server.start("127.0.0.1", port); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.error().toString().c_str());
    return 1;
  }
  std::printf("%s\n", server.url().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server.stop();
  return 0;
}
