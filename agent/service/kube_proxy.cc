// Finding kube-proxy's leftover iptables chains and nftables table.
#include "agent/service/kube_proxy.h"

#include <algorithm>
#include <array>
#include <map>

#include <fmt/format.h>

#include "agent/common/subprocess.h"

namespace cilium::service {
namespace {

// kube-proxy's own chains in iptables and IPVS modes (kubelet owns KUBE-FIREWALL,
// KUBE-KUBELET-CANARY and KUBE-IPTABLES-HINT).
constexpr std::array<std::string_view, 10> kFixedChains = {
    "KUBE-SERVICES",          "KUBE-NODEPORTS", "KUBE-POSTROUTING",    "KUBE-MARK-MASQ",
    "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD",   "KUBE-PROXY-FIREWALL", "KUBE-PROXY-CANARY",
    "KUBE-LOAD-BALANCER",     "KUBE-NODE-PORT"};
// Per Service, endpoint, firewall and external-traffic-policy chains.
constexpr std::array<std::string_view, 6> kChainPrefixes = {"KUBE-SVC-", "KUBE-SEP-", "KUBE-FW-",
                                                            "KUBE-XLB-", "KUBE-EXT-", "KUBE-SVL-"};

std::vector<std::string> dump(const std::vector<std::string>& argv) {
  auto r = run(argv, {}, std::chrono::seconds(10));
  if (!r.ok() || r->exit_code != 0) return {};  // the tool is missing or the table is not there
  return kubeProxyChains(r->out);
}

}  // namespace

std::vector<std::string> kubeProxyChains(std::string_view text) {
  std::vector<std::string> fixed;
  std::map<std::string_view, size_t> counted;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.size() < 2 || line[0] != ':') continue;
    std::string_view chain = line.substr(
        1, line.find(' ') == std::string_view::npos ? std::string_view::npos : line.find(' ') - 1);
    bool known = false;
    for (auto f : kFixedChains)
      if (chain == f) {
        known = true;
        // The same chain may be declared in the nat and filter tables.
        if (std::find(fixed.begin(), fixed.end(), chain) == fixed.end()) fixed.emplace_back(chain);
      }
    if (known) continue;
    for (auto p : kChainPrefixes)
      if (chain.size() > p.size() && chain.substr(0, p.size()) == p) counted[p]++;
  }
  for (auto p : kChainPrefixes)
    if (auto it = counted.find(p); it != counted.end())
      fixed.push_back(fmt::format("{}* ({})", p, it->second));
  return fixed;
}

std::vector<std::string> findLeftoverKubeProxy() {
  std::vector<std::string> out = dump({"iptables-save"});
  for (const auto& c : dump({"iptables-legacy-save"})) out.push_back("legacy: " + c);
  // kube-proxy's nftables mode keeps everything in tables named kube-proxy.
  if (auto r = run({"nft", "list", "tables"}, {}, std::chrono::seconds(10));
      r.ok() && r->exit_code == 0) {
    std::string_view t = r->out;
    while (!t.empty()) {
      size_t nl = t.find('\n');
      std::string_view line = t.substr(0, nl);
      t = nl == std::string_view::npos ? std::string_view() : t.substr(nl + 1);
      if (line.size() > 11 && line.substr(line.size() - 11) == " kube-proxy")
        out.push_back("nftables: " + std::string(line));
    }
  }
  return out;
}

}  // namespace cilium::service
