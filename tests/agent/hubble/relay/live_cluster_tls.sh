#!/usr/bin/env bash
# hubble-relay over TLS on a live local cluster (root), with certificates shaped as Cilium's chart
# issues them: one CA; every agent serves Hubble on :4244 with the shared server certificate
# *.default.hubble-grpc.cilium.io and requires a client certificate from that CA; the relay has
# a client certificate for the nodes and a server certificate *.hubble-relay.cilium.io and
# requires clients' certificates too. `cilium-local up --nodes 2` with the Star Wars manifests
# and rule1; the relay runs in node-1 and finds both nodes through node-1's Peer service on
# node-1's TLS listener (as through the chart's hubble-peer service, with the relay's client
# certificate); the hubble CLI with --tls must see flows of both nodes (the xwing's drop on
# node-2 among them) and 2/2 nodes connected; without a client certificate it is refused.
# node-2's agent then killed: 1/2 connected, node-2 unavailable, node-1 still served; brought
# back: 2/2 again and node-2's new flows through the relay.
# NODES (default 2) sets the cluster's size: with 3, a second Empire ship on node-3 lands too,
# and the relay must connect to, and show flows of, every node.
# Torn down at the end.
# With CERTS=chart the certificates are the chart's own: deploy/helm/cilium rendered by
# helm-template (HELM_TEMPLATE) with hubble.tls.auto.method=helm and relay server TLS, its Secrets
# mounted as the DaemonSet and the relay's Deployment mount them (chart_tls.py), the agents given
# the cilium-config ConfigMap's hubble-tls-* options and the relay the Deployment's --tls-*
# arguments (paths under the test's directory); the CLI trusts the relay as hubble-ui does (the
# relay-server Secret's CA, name ui.hubble-relay.cilium.io). The chart's relay asks clients for
# no certificate, so there the refusals checked are: a relay with a client certificate from
# another CA reaches no node, and a client that trusts another CA does not take the relay's.
#   sudo tests/agent/hubble/relay/live_cluster_tls.sh   (CTest: e2e_hubble_relay_live_tls)
#   sudo CERTS=chart HELM_TEMPLATE=build/deploy/helm/bin/helm-template \
#     tests/agent/hubble/relay/live_cluster_tls.sh      (CTest: e2e_hubble_relay_live_tls_chart)
set -euo pipefail
if [[ $EUID -ne 0 ]]; then
  echo "skipped: needs root" >&2
  [[ ${CILIUM_TEST_REQUIRE_PRIVILEGED:-0} == 1 ]] && exit 1
  exit 77
fi
cd "$(dirname "$0")/../../../.."
repo=$(pwd)
build=${CILIUM_LOCAL_BUILD:-$repo/build}
work=$(mktemp -d /tmp/hubble-relay-tls.XXXXXX)
export CILIUM_LOCAL_NAME=${CILIUM_LOCAL_NAME:-hubble-relay-tls} CILIUM_LOCAL_STATE=$work/state
tool=$repo/deploy/local/cilium-local
nodes_n=${NODES:-2}
relay_pid=""
stranger_pid=""
cleanup() {
  [[ -n $relay_pid ]] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null || true
  [[ -n $stranger_pid ]] && kill "$stranger_pid" 2>/dev/null && wait "$stranger_pid" 2>/dev/null || true
  "$tool" down >/dev/null 2>&1 || "$tool" down || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [[ -f $work/relay.log ]] && tail -20 "$work/relay.log" >&2
  exit 1
}

pki=$work/pki
mkdir -p "$pki" "$work/manifests"
# cert NAME DNS-NAME EXTENDED-KEY-USAGE: a key and a certificate signed by the CA.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=hubble-ca -keyout "$pki/ca.key" \
  -out "$pki/ca.crt" 2>/dev/null
cert() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=%s\n' "$2" "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 1 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}
cert hubble-server '*.default.hubble-grpc.cilium.io' serverAuth
cert relay-client '*.hubble-relay.cilium.io' clientAuth
cert relay-server '*.hubble-relay.cilium.io' serverAuth
cert hubble-cli 'hubble-cli.hubble-relay.cilium.io' clientAuth

# The agents' and the relay's TLS options, and what the CLI trusts the relay with.
agent_tls=(--hubble-tls-cert-file="$pki/hubble-server.crt" --hubble-tls-key-file="$pki/hubble-server.key"
  --hubble-tls-client-ca-files="$pki/ca.crt")
relay_tls=(--tls-hubble-client-cert-file "$pki/relay-client.crt" --tls-hubble-client-key-file "$pki/relay-client.key"
  --tls-hubble-server-ca-files "$pki/ca.crt"
  --tls-relay-server-cert-file "$pki/relay-server.crt" --tls-relay-server-key-file "$pki/relay-server.key"
  --tls-relay-client-ca-files "$pki/ca.crt")
relay_ca=$pki/ca.crt
if [[ ${CERTS:-openssl} == chart ]]; then
  ht=${HELM_TEMPLATE:-$build/deploy/helm/bin/helm-template}
  [[ -x $ht ]] || { echo "skipped: $ht not built" >&2; exit 77; }
  /usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "skipped: python3-yaml not installed" >&2; exit 77; }
  "$ht" cilium deploy/helm/cilium --namespace kube-system --set hubble.relay.enabled=true \
    --set hubble.relay.tls.server.enabled=true >"$work/chart.yaml"
  lines=$(tests/agent/hubble/relay/chart_tls.py "$work/mounts" <"$work/chart.yaml")
  eval "agent_tls=($(sed -n 1p <<<"$lines"))"
  eval "relay_tls=($(sed -n 2p <<<"$lines"))"
  relay_ca=$work/mounts/relay-ca.crt
  [[ ${agent_tls[*]} == *"--hubble-tls-client-ca-files=$work/mounts/var/lib/cilium/tls/hubble/client-ca.crt"* ]] ||
    fail "the chart's agent TLS options: ${agent_tls[*]}"
  [[ ${relay_tls[*]} == *"--tls-hubble-client-cert-file=$work/mounts/var/lib/hubble-relay/tls/client.crt"* ]] ||
    fail "the chart's relay TLS arguments: ${relay_tls[*]}"
fi

cp deploy/local/demo/manifests/*.yaml deploy/local/demo/policies/rule1.yaml "$work/manifests/"
ships=(default/tiefighter)
if ((nodes_n >= 3)); then
  cat >"$work/manifests/tiefighter-3.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: tiefighter-3
  namespace: default
  labels: {org: empire, class: tiefighter, app.kubernetes.io/name: tiefighter}
spec:
  nodeName: node-3
  containers:
    - name: spaceship
      command: [sleep, infinity]
YAML
  ships+=(default/tiefighter-3)
fi
"$tool" up --nodes "$nodes_n" --manifests "$work/manifests" -- --hubble-listen-address=:4244 "${agent_tls[@]}" >/dev/null
"$tool" pods >/dev/null
ds=$("$tool" ip default/deathstar-1)
for ship in "${ships[@]}"; do
  deadline=$((SECONDS + 30))
  until "$tool" exec "$ship" -- cilium-http-client POST "http://$ds/v1/request-landing" \
    --timeout 1 >/dev/null 2>&1; do
    [[ $SECONDS -lt $deadline ]] || fail "$ship cannot land on $ds"
    sleep 0.5
  done
done
if "$tool" exec default/xwing -- cilium-http-client POST "http://$ds/v1/request-landing" \
  --timeout 2 >/dev/null 2>&1; then
  fail "the xwing landed although rule1 is in force"
fi

# The peer service over TCP with TLS, as the chart's hubble-peer service (node-1's agent on
# :4244, reached with the relay's client certificate, checked as hubble-peer.default.hubble-grpc...).
"$tool" host node-1 -- "$build/agent/hubble/relay/hubble-relay" --listen-address 127.0.0.1:4245 \
  --peer-service "$("$tool" ip node-1):4244" "${relay_tls[@]}" --retry-timeout 1s >"$work/relay.log" 2>&1 &
relay_pid=$!
# hubble CLI in node-1 against the relay (PORT, default 4245), trusting CA (default: the relay's),
# with the CLI's certificate unless NOCERT=1 (the chart's relay asks for none)
hubble() {
  local tls=(--tls --tls-ca-cert-files "${CA:-$relay_ca}" --tls-server-name ui.hubble-relay.cilium.io)
  [[ ${NOCERT:-0} == 1 || ${CERTS:-openssl} == chart ]] ||
    tls+=(--tls-client-cert-file "$pki/hubble-cli.crt" --tls-client-key-file "$pki/hubble-cli.key")
  "$tool" host node-1 -- "$build/agent/hubble/cli/hubble" --server "127.0.0.1:${PORT:-4245}" --timeout 3 "${tls[@]}" "$@"
}
deadline=$((SECONDS + 30))
until status=$(hubble status 2>&1) && [[ $status == *"Connected Nodes: $nodes_n/$nodes_n"* ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "the relay does not reach every node over TLS: $status"
  sleep 0.5
done
grep -q 'peer service target=.* tls=true tls_server_name=hubble-peer.default.hubble-grpc.cilium.io' \
  "$work/relay.log" || fail "the relay does not reach the peer service over TLS"
flows=$(hubble observe --last 200 --print-node-name 2>&1)
node_tags=()
for ((i = 1; i <= nodes_n; i++)); do node_tags+=("[default/node-$i]"); done
for want in "${node_tags[@]}" 'default/xwing' 'Policy denied DROPPED'; do
  [[ $flows == *"$want"* ]] || fail "no '$want' in the relay's flows: $flows"
done
nflows=$(grep -c . <<<"$flows")
nodes=$(hubble list nodes 2>&1)
[[ $(grep -c Connected <<<"$nodes") -eq $nodes_n ]] || fail "list nodes: $nodes"
if [[ ${CERTS:-openssl} != chart ]] && NOCERT=1 hubble status >/dev/null 2>&1; then
  fail "the relay answered a client without a certificate"
fi
if [[ ${CERTS:-openssl} == chart ]]; then
  # A client that trusts another CA does not take the relay's certificate.
  if CA=$pki/ca.crt hubble status >/dev/null 2>&1; then
    fail "the CLI trusted the chart's relay certificate with another CA"
  fi
  # A relay whose client certificate another CA signed (the same name) reaches no node: the
  # agents require one from the chart's CA. It knows every node (static peers) and keeps
  # trying: once every node's channel has failed (TRANSIENT_FAILURE: the handshake was turned
  # down, as the good relay reaches the same addresses), none is connected.
  peers=()
  for ((i = 1; i <= nodes_n; i++)); do peers+=(--static-peer "node-$i=$("$tool" ip "node-$i"):4244"); done
  "$tool" host node-1 -- "$build/agent/hubble/relay/hubble-relay" --listen-address 127.0.0.1:4246 \
    --peer-service "" "${peers[@]}" \
    --tls-hubble-client-cert-file "$pki/relay-client.crt" --tls-hubble-client-key-file "$pki/relay-client.key" \
    --tls-hubble-server-ca-files "$work/mounts/var/lib/hubble-relay/tls/hubble-server-ca.crt" \
    --disable-server-tls --health-listen-address "" --metrics-listen-address 127.0.0.1:9967 \
    --retry-timeout 1s >"$work/stranger.log" 2>&1 &
  stranger_pid=$!
  plain() { "$tool" host node-1 -- "$build/agent/hubble/cli/hubble" --server 127.0.0.1:4246 --timeout 3 "$@"; }
  failed="hubble_relay_pool_peer_connection_status{status=\"TRANSIENT_FAILURE\"} $nodes_n"
  deadline=$((SECONDS + 30))
  until m=$("$tool" host node-1 -- curl -sf http://127.0.0.1:9967/metrics 2>&1) && [[ $m == *"$failed"* ]]; do
    [[ $SECONDS -lt $deadline ]] || fail "the stranger relay's channels did not fail: $m"
    sleep 0.5
  done
  st=$(plain status 2>&1)
  [[ $st == *"Connected Nodes: 0/$nodes_n"* ]] || fail "a relay with another CA's client certificate reached a node: $st"
fi
# node-2's agent crashes (SIGKILL): the relay reports it unavailable and still serves node-1;
# brought back (restart-agent, as the DaemonSet would), the relay reconnects over mTLS and
# serves node-2's new flows.
kill -KILL "$(cut -d' ' -f1 "$CILIUM_LOCAL_STATE/nodes/node-2/agent.pid")"
deadline=$((SECONDS + 30))
until status=$(hubble status 2>&1) && [[ $status == *"Connected Nodes: $((nodes_n - 1))/$nodes_n"* ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "the relay does not report node-2's agent gone: $status"
  sleep 0.5
done
nodes=$(hubble list nodes 2>&1)
grep -q 'node-2.*Unavailable' <<<"$nodes" || fail "list nodes without node-2's agent: $nodes"
flows=$(hubble observe --last 20 --print-node-name 2>&1) || true
[[ $flows == *'[default/node-1]'* ]] || fail "node-1's flows while node-2 is down: $flows"
"$tool" restart-agent --node node-2 >/dev/null
deadline=$((SECONDS + 30))
until status=$(hubble status 2>&1) && [[ $status == *"Connected Nodes: $nodes_n/$nodes_n"* ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "the relay does not reconnect to node-2: $status"
  sleep 0.5
done
since=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
deadline=$((SECONDS + 30))
until "$tool" exec default/tiefighter -- cilium-http-client POST "http://$ds/v1/request-landing" \
  --timeout 1 >/dev/null 2>&1 &&
  flows=$(hubble observe --since "$since" --print-node-name 2>&1) &&
  [[ $flows == *'[default/node-2]'*'default/tiefighter'* ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "no new flows of node-2 after its restart: $flows"
  sleep 0.5
done

echo "ok: hubble-relay over mTLS to all $nodes_n nodes (${CERTS:-openssl} certificates): $nflows flows; node-2 killed and back"
