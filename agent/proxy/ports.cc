// Proxy port allocation and persistence.
#include "agent/proxy/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <set>

#include <nlohmann/json.hpp>

#include "agent/common/fd.h"
#include "agent/common/files.h"

namespace cilium::proxy {
namespace {

bool free(uint16_t port) {
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    UniqueFd s(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (!s) return false;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return false;
  }
  return true;
}

}  // namespace

Result<ProxyPortSet> loadOrAllocatePorts(const std::string& state_dir, uint16_t min, uint16_t max) {
  std::string path = state_dir + "/proxy_ports.json";
  if (min == 0 || max < min + 2)
    return makeError(ErrorCode::kInvalidArgument, "proxy port range {}-{} holds fewer than 3 ports",
                     min, max);
  auto text = readFile(path);
  if (text.ok()) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    auto port = [&](const char* key) -> int {
      if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned()) return -1;
      auto v = j[key].get<uint64_t>();
      return v == 0 || v > 65535 ? -1 : static_cast<int>(v);
    };
    int hi = port("cilium-http-ingress"), he = port("cilium-http-egress"),
        de = port("cilium-dns-egress");
    if (hi < 0 || he < 0 || de < 0)
      return makeError(ErrorCode::kFailedPrecondition, "{} is damaged; remove it to allocate anew",
                       path);
    return ProxyPortSet{static_cast<uint16_t>(hi), static_cast<uint16_t>(he),
                        static_cast<uint16_t>(de)};
  }
  if (text.error().code() != ErrorCode::kNotFound) return text.error();
  std::vector<uint16_t> got;
  for (uint32_t p = min; p <= max && got.size() < 3; p++)
    if (free(static_cast<uint16_t>(p))) got.push_back(static_cast<uint16_t>(p));
  if (got.size() < 3)
    return makeError(ErrorCode::kResourceExhausted, "no 3 free proxy ports in {}-{}", min, max);
  ProxyPortSet ports{got[0], got[1], got[2]};
  nlohmann::json j = {{"cilium-http-ingress", ports.http_ingress},
                      {"cilium-http-egress", ports.http_egress},
                      {"cilium-dns-egress", ports.dns_egress}};
  CILIUM_RETURN_IF_ERROR(writeFileAtomic(path, j.dump(2) + "\n", 0600));
  return ports;
}

}  // namespace cilium::proxy
