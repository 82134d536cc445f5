// cilium-http-client: the demo's client workload. One HTTP/1.1 request; prints the status line
// and the body. The exit status says what happened, so scripts can tell a policy drop (timeout)
// from a closed port (refused) from an answer.
#include <cstdio>
#include <string>

#include "deploy/local/workloads/http.h"

namespace {

constexpr char kUsage[] =
    "Usage: cilium-http-client METHOD URL [--timeout SECONDS] [--data BODY]\n"
    "  e.g. cilium-http-client POST http://10.200.0.2/v1/request-landing --timeout 5\n"
    "Prints 'HTTP <status> <reason>' then the body.\n"
    "Exit status: 0 HTTP 2xx answer, 1 other HTTP answer, 2 usage, 3 connection refused or\n"
    "unreachable, 4 timeout (no answer in time), 5 any other failure.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace cilium;
  std::vector<std::string> words;
  double timeout_s = 5;
  std::string data;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--timeout" || arg == "--data") && i + 1 < argc) {
      std::string v = argv[++i];
      if (arg == "--data") {
        data = v;
        continue;
      }
      try {
        size_t pos = 0;
        timeout_s = std::stod(v, &pos);
        if (pos != v.size() || !(timeout_s > 0) || timeout_s > 3600) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        std::fprintf(stderr, "cilium-http-client: --timeout '%s' is not 0..3600 seconds\n",
                     v.c_str());
        return 2;
      }
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "cilium-http-client: unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    } else {
      words.push_back(arg);
    }
  }
  if (words.size() != 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto url = local::parseUrl(words[1]);
  if (!url.ok()) {
    std::fprintf(stderr, "cilium-http-client: %s\n", url.error().message().c_str());
    return 2;
  }
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  auto r = local::request(words[0], *url, data, timeout);
  if (!r.ok()) {
    std::fprintf(stderr, "cilium-http-client: %s\n", r.error().message().c_str());
    switch (r.error().code()) {
      case ErrorCode::kDeadlineExceeded: return 4;
      case ErrorCode::kUnavailable: return 3;
      default: return 5;
    }
  }
  std::printf("HTTP %d %s\n%s", r->status, r->reason.c_str(), r->body.c_str());
  if (!r->body.empty() && r->body.back() != '\n') std::printf("\n");
  return r->status >= 200 && r->status < 300 ? 0 : 1;
}
