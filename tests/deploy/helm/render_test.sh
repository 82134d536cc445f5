#!/usr/bin/env bash
# The chart deploy/helm/cilium rendered by helm-template (Helm's engine) for the default values and
# a matrix of values; every rendering linted (yamllint) and validated against the Kubernetes and
# Prometheus operator schemas (npm kubernetes-models, @kubernetes-models/prometheus-operator,
# installed with `npm ci` from package-lock.json into the build tree); what each combination must
# change is checked object by object; invalid values are refused naming the value; the Hubble
# certificates verify against their CA; the CRDs' schemas are structural and accept and refuse the
# objects of crd-samples/ (crds.mjs, AJV); the alerts pass `promtool check rules` and
# `promtool test rules` (alerts_test.yaml). No root, loopback only (npm's registry at install).
#   HELM_TEMPLATE=build/deploy/helm/bin/helm-template tests/deploy/helm/render_test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
chart=$repo/deploy/helm/cilium
ht=${HELM_TEMPLATE:-$repo/build/deploy/helm/bin/helm-template}
state=${CHART_TEST_DIR:-$repo/build/tests/deploy/helm}

skip() {
  echo "skipped: $*" >&2
  exit 77
}
[[ -x $ht ]] || skip "$ht not built (needs golang-go and the sprig, yaml.v3, gojsonschema sources)"
for tool in node npm yamllint promtool openssl; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh)"
done

work=$(mktemp -d /tmp/cilium-chart.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The npm packages, pinned by package-lock.json, installed once per lock file.
npm_dir=$state/npm
if ! cmp -s "$here/package-lock.json" "$npm_dir/package-lock.json" || [[ ! -d $npm_dir/node_modules ]]; then
  rm -rf "$npm_dir"
  mkdir -p "$npm_dir"
  cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
# the scripts import from node_modules, so they run from beside it
cp "$here/validate.mjs" "$here/crds.mjs" "$here/prometheus-rules.mjs" "$here/query.mjs" "$here/values-table.mjs" "$npm_dir/"
q() { node "$npm_dir/query.mjs" "$@"; }

# expect FILE EXPR WANT: the expression over the rendered objects yields WANT.
expect() {
  local got
  got=$(q "$1" "$2" 2>&1) || true
  [[ $got == "$3" ]] || fail "$(basename "$1"): $2 = '$got', want '$3'"
}

# render NAME ARGS...: renders into $work/NAME.yaml (kube-system, as installed), lints it.
render() {
  local name=$1
  shift
  if ! "$ht" cilium "$chart" --namespace kube-system "$@" >"$work/$name.yaml" 2>"$work/$name.err"; then
    fail "$name: helm-template $*: $(cat "$work/$name.err")"
    return 1
  fi
  yamllint -s -c "$here/yamllint.yaml" "$work/$name.yaml" >&2 || fail "$name: yamllint"
  rendered+=("$work/$name.yaml")
}
rendered=()

# --- the matrix ------------------------------------------------------------------------------
render default --include-crds
f=$work/default.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["routing-mode"]' tunnel
expect "$f" 'get("ConfigMap","cilium-config").data["tunnel-protocol"]' vxlan
expect "$f" 'get("ConfigMap","cilium-config").data["kube-proxy-replacement"]' false
expect "$f" 'get("ConfigMap","cilium-config").data["ipam"]' cluster-pool
expect "$f" 'get("ConfigMap","cilium-config").data["cluster-pool-ipv4-cidr"]' 10.0.0.0/8
expect "$f" 'get("ConfigMap","cilium-config").data["enable-hubble"]' true
expect "$f" 'get("ConfigMap","cilium-config").data["hubble-tls-cert-file"]' /var/lib/cilium/tls/hubble/server.crt
expect "$f" 'get("ConfigMap","cilium-config").data["agent-health-port"]' 9879
expect "$f" 'get("ConfigMap","cilium-config").data["prometheus-serve-addr"]' undefined
expect "$f" 'Object.values(get("ConfigMap","cilium-config").data).every(v => typeof v === "string")' true
ds='get("DaemonSet","cilium").spec.template.spec'
expect "$f" "$ds.hostNetwork" true
expect "$f" "$ds.priorityClassName" system-node-critical
expect "$f" "$ds.tolerations" '[{"operator":"Exists"}]'
expect "$f" "$ds.containers[0].livenessProbe.httpGet" '{"host":"127.0.0.1","path":"/healthz","port":9879,"scheme":"HTTP"}'
expect "$f" "$ds.containers[0].readinessProbe.httpGet.port" 9879
expect "$f" "$ds.containers[0].args" '["--config-dir=/tmp/cilium/config-map"]'
expect "$f" "$ds.initContainers.map(c => c.name)" '["mount-cgroup","mount-bpf-fs","install-cni-binaries"]'
# not privileged: the capability list, the rest dropped; sysctls through the host's /proc/sys/net
expect "$f" "$ds.containers[0].securityContext" \
  '{"capabilities":{"add":["NET_ADMIN","NET_RAW","BPF","PERFMON","SYS_ADMIN"],"drop":["ALL"]}}'
expect "$f" 'get("ConfigMap","cilium-config").data["procfs"]' /host/proc
expect "$f" "$ds.containers[0].volumeMounts.find(m => m.name === \"host-proc-sys-net\").mountPath" /host/proc/sys/net
expect "$f" "$ds.volumes.find(v => v.name === \"host-proc-sys-net\").hostPath" '{"path":"/proc/sys/net","type":"Directory"}'
expect "$f" 'get("DaemonSet","cilium").spec.updateStrategy' '{"rollingUpdate":{"maxUnavailable":2},"type":"RollingUpdate"}'
expect "$f" "$ds.volumes.find(v => v.name === \"hubble-tls\").projected.sources[0].secret.name" hubble-server-certs
expect "$f" 'get("Deployment","cilium-operator").spec.replicas' 2
expect "$f" 'get("Deployment","cilium-operator").spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey' kubernetes.io/hostname
# the operator as Cilium's: cilium-config is its --config-dir, no setting passed as a flag
op='get("Deployment","cilium-operator").spec.template.spec'
expect "$f" "$op.containers[0].args" '["--config-dir=/tmp/cilium/config-map","--debug=$(CILIUM_DEBUG)"]'
expect "$f" "$op.containers[0].env.find(e => e.name === \"CILIUM_DEBUG\").valueFrom.configMapKeyRef" '{"key":"debug","name":"cilium-config","optional":true}'
expect "$f" "$op.containers[0].volumeMounts" '[{"name":"cilium-config-path","mountPath":"/tmp/cilium/config-map","readOnly":true}]'
expect "$f" "$op.volumes" '[{"name":"cilium-config-path","configMap":{"name":"cilium-config"}}]'
expect "$f" 'Object.keys(get("ConfigMap","cilium-config").data).filter(k => /^(identity-gc|identity-heartbeat|cilium-endpoint-gc|nodes-gc|operator-|leader-election|enable-metrics)/.test(k)).map(k => k + "=" + get("ConfigMap","cilium-config").data[k]).join(" ")' \
  "identity-heartbeat-timeout=30m identity-gc-interval=15m cilium-endpoint-gc-interval=5m nodes-gc-interval=5m operator-api-serve-addr=127.0.0.1:9234 operator-prometheus-serve-addr=:9963 enable-metrics=true operator-k8s-client-qps=100 operator-k8s-client-burst=200 leader-election-lease-duration=15s leader-election-renew-deadline=10s leader-election-retry-period=2s"
c1=$(q "$f" 'get("DaemonSet","cilium").spec.template.metadata.annotations["cilium.io/cilium-configmap-checksum"]')
expect "$f" 'get("Deployment","cilium-operator").spec.template.metadata.annotations["cilium.io/cilium-configmap-checksum"]' "$c1"
expect "$f" 'get("Role","cilium-operator").rules' '[{"apiGroups":["coordination.k8s.io"],"resources":["leases"],"verbs":["get","create","update"]}]'
expect "$f" 'objs.filter(o => o.kind === "CustomResourceDefinition").map(o => o.metadata.name).sort().join(" ")' \
  "ciliumclusterwidenetworkpolicies.cilium.io ciliumendpoints.cilium.io ciliumidentities.cilium.io ciliumnetworkpolicies.cilium.io ciliumnodes.cilium.io"
expect "$f" 'objs.some(o => ["ServiceMonitor","PrometheusRule"].includes(o.kind) || o.metadata.name.startsWith("hubble-relay") || o.metadata.name.startsWith("hubble-ui"))' false
# Helm's print order: ServiceAccounts before ConfigMaps before RBAC before workloads
expect "$f" 'objs.map(o => o.kind).filter((k, i, a) => a.indexOf(k) === i).join(",")' \
  "CustomResourceDefinition,ServiceAccount,Secret,ConfigMap,ClusterRole,ClusterRoleBinding,Role,RoleBinding,Service,DaemonSet,Deployment"
grep -q '^# Source: cilium/templates/cilium-agent/daemonset.yaml$' "$f" || fail "default: no '# Source:' header"
# without --include-crds, as helm template, the CRDs are not printed
"$ht" cilium "$chart" -n kube-system | grep -q 'kind: CustomResourceDefinition' && fail "CRDs printed without --include-crds"

render kpr-on --set kubeProxyReplacement=true --set k8sServiceHost=10.0.0.1 --set k8sServicePort=6443
f=$work/kpr-on.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["kube-proxy-replacement"]' true
expect "$f" 'get("DaemonSet","cilium").spec.template.spec.containers[0].env.filter(e => e.name.startsWith("KUBERNETES_"))' \
  '[{"name":"KUBERNETES_SERVICE_HOST","value":"10.0.0.1"},{"name":"KUBERNETES_SERVICE_PORT","value":"6443"}]'
expect "$f" 'get("Deployment","cilium-operator").spec.template.spec.containers[0].env.find(e => e.name === "KUBERNETES_SERVICE_HOST").value' 10.0.0.1

# a boolean false (Helm's --set type) is accepted as Cilium's string "false"
render kpr-off --set kubeProxyReplacement=false
expect "$work/kpr-off.yaml" 'get("ConfigMap","cilium-config").data["kube-proxy-replacement"]' false
expect "$work/kpr-off.yaml" 'get("DaemonSet","cilium").spec.template.spec.containers[0].env.some(e => e.name.startsWith("KUBERNETES_"))' false

printf 'devices: [eth0, eth1]\nipv4NativeRoutingCIDR: 10.0.0.0/8\n' >"$work/native-values.yaml"
render native --set routingMode=native --set autoDirectNodeRoutes=true --set bpf.masquerade=true -f "$work/native-values.yaml"
f=$work/native.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["routing-mode"]' native
expect "$f" 'get("ConfigMap","cilium-config").data["tunnel-protocol"]' undefined
expect "$f" 'get("ConfigMap","cilium-config").data["auto-direct-node-routes"]' true
expect "$f" 'get("ConfigMap","cilium-config").data["ipv4-native-routing-cidr"]' 10.0.0.0/8
expect "$f" 'get("ConfigMap","cilium-config").data["enable-bpf-masquerade"]' true
expect "$f" 'get("ConfigMap","cilium-config").data["devices"]' eth0,eth1

render hubble-relay-ui --set hubble.relay.enabled=true --set hubble.ui.enabled=true
f=$work/hubble-relay-ui.yaml
relay='get("Deployment","hubble-relay").spec.template.spec.containers[0].args'
expect "$f" "$relay.filter(a => a.startsWith(\"--peer-service\") || a.includes(\"tls\"))" \
  '["--peer-service=hubble-peer.kube-system.svc.cluster.local:443","--tls-hubble-client-cert-file=/var/lib/hubble-relay/tls/client.crt","--tls-hubble-client-key-file=/var/lib/hubble-relay/tls/client.key","--tls-hubble-server-ca-files=/var/lib/hubble-relay/tls/hubble-server-ca.crt","--disable-server-tls"]'
expect "$f" "$relay.filter(a => a.startsWith(\"--cluster-name\"))" '["--cluster-name=default"]'
expect "$f" 'get("Service","hubble-relay").spec.ports[0].port' 80
expect "$f" 'get("Deployment","hubble-ui").spec.template.spec.containers[0].args' '["--server=hubble-relay.kube-system.svc:80","--listen-address=:8081"]'
expect "$f" 'get("Service","hubble-peer").spec.ports[0].targetPort' 4244
expect "$f" 'objs.filter(o => o.kind === "Secret").map(o => o.metadata.name).join(" ")' "cilium-ca hubble-server-certs hubble-relay-client-certs"
# the certificates: signed by the CA, with Cilium's names
for s in hubble-server-certs hubble-relay-client-certs; do
  q "$f" "Buffer.from(get(\"Secret\",\"$s\").data[\"ca.crt\"], \"base64\").toString()" >"$work/ca.pem"
  q "$f" "Buffer.from(get(\"Secret\",\"$s\").data[\"tls.crt\"], \"base64\").toString()" >"$work/$s.pem"
  openssl verify -CAfile "$work/ca.pem" "$work/$s.pem" >/dev/null || fail "$s: does not verify against cilium-ca"
done
openssl x509 -in "$work/hubble-server-certs.pem" -noout -ext subjectAltName | grep -q 'DNS:\*.default.hubble-grpc.cilium.io' ||
  fail "hubble-server-certs: no DNS:*.default.hubble-grpc.cilium.io"
openssl x509 -in "$work/hubble-relay-client-certs.pem" -noout -ext subjectAltName | grep -q 'DNS:\*.hubble-relay.cilium.io' ||
  fail "hubble-relay-client-certs: no DNS:*.hubble-relay.cilium.io"
q "$f" 'Buffer.from(get("Secret","hubble-server-certs").data["tls.key"], "base64").toString()' >"$work/server.key"
[[ $(openssl pkey -in "$work/server.key" -pubout | sha256sum) == $(openssl x509 -in "$work/hubble-server-certs.pem" -noout -pubkey | sha256sum) ]] ||
  fail "hubble-server-certs: tls.key is not the certificate's key"

render hubble-relay-tls --set hubble.relay.enabled=true --set hubble.ui.enabled=true --set hubble.relay.tls.server.enabled=true --set cluster.name=east \
  --set 'hubble.tls.server.extraDnsNames={hubble.example.com}' --set 'hubble.tls.server.extraIpAddresses={10.0.0.7}' \
  --set 'hubble.relay.tls.server.extraDnsNames={relay.example.com}'
f=$work/hubble-relay-tls.yaml
expect "$f" "$relay.filter(a => a.startsWith(\"--tls-relay\"))" '["--tls-relay-server-cert-file=/var/lib/hubble-relay/tls/server.crt","--tls-relay-server-key-file=/var/lib/hubble-relay/tls/server.key"]'
expect "$f" 'get("Service","hubble-relay").spec.ports[0].port' 443
expect "$f" 'get("Deployment","hubble-ui").spec.template.spec.containers[0].args[0]' --server=tls://hubble-relay.kube-system.svc:443
q "$f" 'Buffer.from(get("Secret","hubble-server-certs").data["tls.crt"], "base64").toString()' >"$work/east.pem"
# Cilium's names: the common name, then the extra names and addresses
sans() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -n +2 | tr -d ' '; }
[[ $(openssl x509 -in "$work/east.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p') == '*.east.hubble-grpc.cilium.io' ]] ||
  fail "cluster.name=east: server certificate's common name is not *.east.hubble-grpc.cilium.io"
[[ $(sans "$work/east.pem") == 'DNS:*.east.hubble-grpc.cilium.io,DNS:hubble.example.com,IPAddress:10.0.0.7' ]] ||
  fail "hubble-server-certs: names $(sans "$work/east.pem")"
q "$f" 'Buffer.from(get("Secret","hubble-relay-server-certs").data["tls.crt"], "base64").toString()' >"$work/relay-server.pem"
[[ $(sans "$work/relay-server.pem") == 'DNS:*.hubble-relay.cilium.io,DNS:relay.example.com' ]] ||
  fail "hubble-relay-server-certs: names $(sans "$work/relay-server.pem")"
# hubble-ui checks the relay under the name Cilium's hubble-ui uses, which the wildcard covers
expect "$f" 'get("Deployment","hubble-ui").spec.template.spec.containers[0].args[2]' --tls-server-name=ui.hubble-relay.cilium.io

render hubble-off --set hubble.enabled=false
f=$work/hubble-off.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["enable-hubble"]' false
expect "$f" 'get("ConfigMap","cilium-config").data["hubble-listen-address"]' undefined
expect "$f" 'objs.some(o => o.kind === "Secret" || o.metadata.name === "hubble-peer")' false

render hubble-plain --set hubble.tls.enabled=false --set hubble.relay.enabled=true
f=$work/hubble-plain.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["hubble-disable-tls"]' true
expect "$f" "$relay.filter(a => a.includes(\"tls\"))" '["--disable-client-tls","--disable-server-tls"]'
expect "$f" 'objs.some(o => o.kind === "Secret")' false
# without certificates the output is the same every time
"$ht" cilium "$chart" -n kube-system --set hubble.tls.enabled=false --set hubble.relay.enabled=true >"$work/again.yaml"
cmp -s "$f" "$work/again.yaml" || fail "hubble-plain: two renderings differ"

render ipam-kubernetes --set ipam.mode=kubernetes --set operator.prometheus.enabled=false
f=$work/ipam-kubernetes.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["enable-metrics"]' undefined
expect "$f" 'get("ConfigMap","cilium-config").data["ipam"]' kubernetes
expect "$f" 'get("ConfigMap","cilium-config").data["cluster-pool-ipv4-cidr"]' undefined

render ipam-pools --set 'ipam.operator.clusterPoolIPv4PodCIDRList={10.1.0.0/16,10.2.0.0/16}' --set ipam.operator.clusterPoolIPv4MaskSize=26
f=$work/ipam-pools.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["cluster-pool-ipv4-cidr"]' "10.1.0.0/16 10.2.0.0/16"
expect "$f" 'get("ConfigMap","cilium-config").data["cluster-pool-ipv4-mask-size"]' 26

render prometheus --set prometheus.enabled=true --set prometheus.serviceMonitor.enabled=true \
  --set prometheus.prometheusRule.enabled=true --set operator.prometheus.serviceMonitor.enabled=true \
  --set 'hubble.metrics.enabled={dns,drop,tcp,flow}' --set hubble.metrics.serviceMonitor.enabled=true
f=$work/prometheus.yaml
expect "$f" 'get("ConfigMap","cilium-config").data["prometheus-serve-addr"]' :9962
expect "$f" 'get("ConfigMap","cilium-config").data["hubble-metrics-server"]' :9965
expect "$f" 'get("ConfigMap","cilium-config").data["hubble-metrics"]' "dns drop tcp flow"
expect "$f" 'get("DaemonSet","cilium").spec.template.metadata.annotations["prometheus.io/port"]' 9962
expect "$f" 'get("DaemonSet","cilium").spec.template.spec.containers[0].ports.map(p => p.containerPort)' '[9962,9965]'
expect "$f" 'objs.filter(o => o.kind === "ServiceMonitor").map(o => o.metadata.name).join(" ")' "cilium-agent hubble cilium-operator"
expect "$f" 'get("PrometheusRule","cilium").spec.groups[0].rules.map(r => r.alert).join(" ")' \
  "CiliumPolicyDropSpike CiliumAgentDown CiliumAgentNotReady CiliumIdentityPressure CiliumEndpointRegenerationSlow CiliumEndpointRegenerationVerySlow CiliumBpfMapPressure"
expect "$f" 'get("ConfigMap","cilium-config").data["operator-prometheus-serve-addr"]' :9963

render privileged --set securityContext.privileged=true --set operator.replicas=1 --set ipv6.enabled=true --set loadBalancer.algorithm=maglev
f=$work/privileged.yaml
expect "$f" 'get("DaemonSet","cilium").spec.template.spec.containers[0].securityContext' '{"privileged":true}'
expect "$f" 'get("Deployment","cilium-operator").spec.replicas' 1
expect "$f" 'get("ConfigMap","cilium-config").data["enable-ipv6"]' true
expect "$f" 'get("ConfigMap","cilium-config").data["bpf-lb-algorithm"]' maglev

# an upgrade keeps the CA Secret's name, a changed ConfigMap changes the DaemonSet's checksum
render upgrade --is-upgrade --set debug.enabled=true
c1=$(q "$work/hubble-relay-ui.yaml" 'get("DaemonSet","cilium").spec.template.metadata.annotations["cilium.io/cilium-configmap-checksum"]')
c2=$(q "$work/upgrade.yaml" 'get("DaemonSet","cilium").spec.template.metadata.annotations["cilium.io/cilium-configmap-checksum"]')
[[ $c1 != "$c2" && ${#c2} == 64 ]] || fail "configmap checksum: '$c1' vs '$c2'"
"$ht" cilium "$chart" -n kube-system --notes --is-upgrade | grep -q "You have upgraded release cilium" || fail "NOTES.txt on upgrade"

# every rendering against the schemas of the kinds it holds
node "$npm_dir/validate.mjs" "${rendered[@]}" || fail "kubernetes-models validation"
# the CRDs' schemas are structural; objects as users and the components write them pass, and
# wrongly typed ones are refused at the field (crd-samples/), as the API server would
node "$npm_dir/crds.mjs" "$work/default.yaml" "valid:$here/crd-samples/valid.yaml" \
  "valid:$repo/deploy/local/demo/policies/rule1.yaml" "valid:$repo/deploy/local/demo/policies/rule1-l7.yaml" \
  "invalid:$here/crd-samples/invalid.yaml" || fail "CRD schemas"

# --- invalid values: refused, naming the value --------------------------------------------------
# refuse WANT ARGS...: helm-template fails and its message contains WANT.
refuse() {
  local want=$1 out
  shift
  if out=$("$ht" cilium "$chart" -n kube-system "$@" 2>&1 >/dev/null); then
    fail "accepted: $*"
  elif [[ $out != *"$want"* ]]; then
    fail "$*: message does not name '$want': $out"
  fi
}
refuse "hubble.relay.enabled: Invalid type. Expected: boolean, given: string" --set hubble.relay.enabled=yes
refuse "hubble.relay: Additional property enable is not allowed" --set hubble.relay.enable=true
refuse "(root): Additional property bogusKey is not allowed" --set bogusKey=1
refuse "ipam.mode: ipam.mode must be one of the following" --set ipam.mode=eni
refuse "tunnelProtocol: tunnelProtocol must be one of the following" --set tunnelProtocol=geneve
refuse "routingMode: routingMode must be one of the following" --set routingMode=direct
refuse "cluster.id: Must be less than or equal to 255" --set cluster.id=256
refuse "operator.replicas: Must be greater than or equal to 0" --set operator.replicas=-1
refuse "ipam.operator.clusterPoolIPv4PodCIDRList.0: Does not match pattern" --set 'ipam.operator.clusterPoolIPv4PodCIDRList={10.0.0.0/33}'
refuse "identityAllocationMode: identityAllocationMode must be one of the following" --set identityAllocationMode=kvstore
refuse "hubble.tls.auto.method: hubble.tls.auto.method must be one of the following" --set hubble.tls.auto.method=cronJob
refuse "MTU: Must validate at least one schema" --set MTU=100
refuse "kubeProxyReplacement: Must validate at least one schema" --set kubeProxyReplacement=partial
refuse "operator.leaderElection.leaseDuration: Does not match pattern" --set-string operator.leaderElection.leaseDuration=15
refuse "encryption.enabled=true (type wireguard) is not supported by cilium-cpp yet" --set encryption.enabled=true --set encryption.type=wireguard
refuse "kubeProxyReplacement=true needs k8sServiceHost" --set kubeProxyReplacement=true
refuse "routingMode=native with bpf.masquerade=true needs ipv4NativeRoutingCIDR" --set routingMode=native --set bpf.masquerade=true --set devices=eth0
refuse "bpf.masquerade=true needs devices" --set bpf.masquerade=true
refuse "hubble.ui.enabled=true needs hubble.relay.enabled=true" --set hubble.ui.enabled=true
refuse "hubble.relay.enabled=true needs hubble.enabled=true" --set hubble.enabled=false --set hubble.relay.enabled=true
refuse "--set \"novalue\": key=value expected" --set novalue
refuse "open $work/missing.yaml: no such file" -f "$work/missing.yaml"

# --- the chart's README lists every value as values.yaml has it ---------------------------------
node "$npm_dir/values-table.mjs" "$chart/values.yaml" >"$work/table.md"
sed -n '/^| key | default | description |$/,$p' "$chart/README.md" | cmp -s - "$work/table.md" ||
  fail "deploy/helm/cilium/README.md: the values table differs from values.yaml (node tests/deploy/helm/values-table.mjs)"

# --- the alerts -------------------------------------------------------------------------------
node "$npm_dir/prometheus-rules.mjs" "$work/prometheus.yaml" >"$work/rules.yaml"
cp "$here/alerts_test.yaml" "$work/"
promtool check rules "$work/rules.yaml" >&2 || fail "promtool check rules"
(cd "$work" && promtool test rules alerts_test.yaml) >&2 || fail "promtool test rules"

if ((failures)); then
  echo "render_test: $failures failure(s)" >&2
  exit 1
fi
echo "render_test: ${#rendered[@]} renderings linted and validated, all checks passed"
