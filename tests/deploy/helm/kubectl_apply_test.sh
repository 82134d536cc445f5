#!/usr/bin/env bash
# The rendered chart applied with the real kubectl (1.32) to the local apiserver
# (cilium-local-apiserver, deploy/local/apiserver) as `helm install` then `helm upgrade` would
# send it: every object (CRDs included) is created, read back as rendered, objects of the CRDs'
# kinds are applied and read back, a changed value is
# configured on the second apply while the rest is unchanged, and delete removes them all.
# Loopback only, no root; the apiserver is stopped by its pid.
#   HELM_TEMPLATE=build/deploy/helm/bin/helm-template LOCAL_APISERVER=build/deploy/local/cilium-local-apiserver \
#     tests/deploy/helm/kubectl_apply_test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
chart=$repo/deploy/helm/cilium
ht=${HELM_TEMPLATE:-$repo/build/deploy/helm/bin/helm-template}
apiserver=${LOCAL_APISERVER:-$repo/build/deploy/local/cilium-local-apiserver}
kubectl_bin=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.32}

skip() {
  echo "skipped: $*" >&2
  exit 77
}
[[ -x $ht ]] || skip "$ht not built"
[[ -x $apiserver ]] || skip "$apiserver not built"
[[ -x $kubectl_bin ]] || skip "$kubectl_bin is not installed"

work=$(mktemp -d /tmp/cilium-chart-kubectl.XXXXXX)
pid=""
cleanup() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
die() {
  echo "FAIL: $*" >&2
  [[ -s $work/apiserver.log ]] && tail -20 "$work/apiserver.log" >&2
  exit 1
}

"$apiserver" --listen 127.0.0.1:0 >"$work/url" 2>"$work/apiserver.log" &
pid=$!
for _ in $(seq 500); do
  [[ -s $work/url ]] && break
  kill -0 "$pid" 2>/dev/null || die "cilium-local-apiserver exited"
  sleep 0.01
done
url=$(head -1 "$work/url")
[[ $url == http://127.0.0.1:* ]] || die "no URL from cilium-local-apiserver: '$url'"
k() { HOME=$work "$kubectl_bin" --server="$url" --cache-dir="$work/cache" "$@"; }

values=(--set hubble.relay.enabled=true --set hubble.ui.enabled=true --set prometheus.enabled=true
  --set prometheus.serviceMonitor.enabled=true --set prometheus.prometheusRule.enabled=true
  --set operator.prometheus.serviceMonitor.enabled=true)
"$ht" cilium "$chart" -n kube-system --include-crds "${values[@]}" >"$work/install.yaml"
objects=$(grep -c '^kind: ' "$work/install.yaml")

# install: the schema checks are render_test's (the local apiserver serves no /openapi)
k apply --validate=false -f "$work/install.yaml" >"$work/apply1" 2>&1 || die "apply: $(cat "$work/apply1")"
created=$(grep -c ' created$' "$work/apply1" || true)
[[ $created == "$objects" ]] || die "install created $created of $objects objects: $(cat "$work/apply1")"

# read back as rendered
[[ $(k -n kube-system get configmap cilium-config -o jsonpath='{.data.routing-mode}') == tunnel ]] || die "cilium-config routing-mode"
[[ $(k -n kube-system get daemonset cilium -o jsonpath='{.spec.template.spec.hostNetwork}') == true ]] || die "DaemonSet hostNetwork"
[[ $(k -n kube-system get deployment cilium-operator -o jsonpath='{.spec.replicas}') == 2 ]] || die "operator replicas"
[[ $(k get clusterrole cilium -o jsonpath='{.rules[*].apiGroups[*]}') == *cilium.io* ]] || die "ClusterRole cilium"
[[ $(k get customresourcedefinitions ciliumnetworkpolicies.cilium.io -o jsonpath='{.spec.names.kind}') == CiliumNetworkPolicy ]] || die "CRD"
[[ $(k -n kube-system get prometheusrule cilium -o jsonpath='{.spec.groups[0].rules[0].alert}') == CiliumPolicyDropSpike ]] || die "PrometheusRule"

# objects of the CRDs' kinds as users and the components write them (crd-samples/valid.yaml, which
# render_test checks against the CRD schemas), applied and read back, then removed
samples=$here/crd-samples/valid.yaml
k apply --validate=false -f "$samples" >"$work/apply-crs" 2>&1 || die "apply samples: $(cat "$work/apply-crs")"
[[ $(grep -c ' created$' "$work/apply-crs") == $(grep -c '^kind: ' "$samples") ]] || die "samples: $(cat "$work/apply-crs")"
[[ $(k -n default get ciliumnetworkpolicies l3-l4-l7 -o jsonpath='{.spec.ingress[0].toPorts[0].ports[0].port}') == 80 ]] || die "CNP read back"
[[ $(k get ciliumnodes node-1 -o jsonpath='{.spec.ipam.podCIDRs[0]}') == 10.0.1.0/24 ]] || die "CiliumNode read back"
[[ $(k -n default get ciliumendpoints web-0 -o jsonpath='{.status.identity.id}') == 30001 ]] || die "CiliumEndpoint read back"
k delete -f "$samples" >"$work/delete-crs" 2>&1 || die "delete samples: $(cat "$work/delete-crs")"

# upgrade: two values changed, in the three objects they touch
"$ht" cilium "$chart" -n kube-system --is-upgrade "${values[@]}" --set routingMode=native \
  --set operator.replicas=1 --show-only templates/cilium-configmap.yaml \
  --show-only templates/cilium-operator/deployment.yaml --show-only templates/cilium-agent/daemonset.yaml >"$work/upgrade.yaml"
k apply --validate=false -f "$work/upgrade.yaml" >"$work/apply2" 2>&1 || die "upgrade: $(cat "$work/apply2")"
grep -q '^configmap/cilium-config configured$' "$work/apply2" || die "cilium-config not configured: $(cat "$work/apply2")"
grep -q '^deployment.apps/cilium-operator configured$' "$work/apply2" || die "operator not configured: $(cat "$work/apply2")"
[[ $(k -n kube-system get configmap cilium-config -o jsonpath='{.data.routing-mode}') == native ]] || die "routing-mode after upgrade"
[[ $(k -n kube-system get deployment cilium-operator -o jsonpath='{.spec.replicas}') == 1 ]] || die "replicas after upgrade"
# applying the install's manifests again reverts exactly those three; the rest is unchanged
k apply --validate=false -f "$work/install.yaml" >"$work/apply3" 2>&1 || die "re-apply: $(cat "$work/apply3")"
changed=$(grep -v ' unchanged$' "$work/apply3" | sort | tr '\n' ' ')
[[ $changed == "configmap/cilium-config configured daemonset.apps/cilium configured deployment.apps/cilium-operator configured " ]] ||
  die "re-apply changed '$changed': $(cat "$work/apply3")"

# uninstall
k delete -f "$work/install.yaml" >"$work/delete" 2>&1 || die "delete: $(cat "$work/delete")"
deleted=$(grep -c ' deleted' "$work/delete" || true)
[[ $deleted == "$objects" ]] || die "deleted $deleted of $objects: $(cat "$work/delete")"
[[ -z $(k -n kube-system get configmaps,daemonsets,deployments -o name 2>&1) ]] || die "objects left after delete"
echo "kubectl_apply_test: $objects objects created, upgraded, deleted"
