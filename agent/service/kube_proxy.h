// Leftover kube-proxy rules in the node's network namespace: with kube-proxy-replacement on,
// kube-proxy's iptables chains (or its nftables table) still catch Service traffic before the BPF
// datapath sees it, so the agent looks for them at start and reports what it finds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cilium::service {

// The kube-proxy chains an `iptables-save` dump declares (":KUBE-SERVICES - [0:0]"): its fixed
// chains by name, in the order found, then its per-Service chains (KUBE-SVC-..., KUBE-SEP-...)
// counted per prefix ("KUBE-SVC-* (12)"). Kubelet's own chains (KUBE-FIREWALL,
// KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) are not kube-proxy's and are left out.
std::vector<std::string> kubeProxyChains(std::string_view iptables_save);

// Reads the current network namespace's rules with iptables-save, iptables-legacy-save and
// `nft list tables` (whichever exist; read only) and returns kube-proxy's chains as above,
// each prefixed with where it was found when it is not the default iptables ("legacy:
// KUBE-SERVICES", "nftables: table ip kube-proxy"). Empty when nothing is left (or no tool is
// installed).
std::vector<std::string> findLeftoverKubeProxy();

}  // namespace cilium::service
