#!/usr/bin/env bash
# Hubble UI on a live local cluster (root): `cilium-local up --nodes 2` with the Star Wars
# manifests and rule1, the tiefighter lands, the xwing is dropped by policy on node-2; hubble-ui
# over node-2's Hubble socket in headless Chromium must show the xwing's red TCP/80 edge to the
# deathstar and the tiefighter's forwarded one. Screenshot to $ARTIFACTS (default
# build/test-artifacts/hubble-ui/live-node-2.png). Everything is torn down at the end.
#   sudo tests/agent/hubble/ui/live_cluster.sh   (CTest: e2e_hubble_ui_live_cluster, tier e2e)
set -euo pipefail
# As the privileged test harness: 77 (CTest "Skipped") without root or Chromium, unless
# CILIUM_TEST_REQUIRE_PRIVILEGED=1 makes that a failure.
if [[ $EUID -ne 0 ]] || ! command -v chromium >/dev/null; then
  echo "skipped: needs root and chromium" >&2
  [[ ${CILIUM_TEST_REQUIRE_PRIVILEGED:-0} == 1 ]] && exit 1
  exit 77
fi
cd "$(dirname "$0")/../../../.."
repo=$(pwd)
build=${CILIUM_LOCAL_BUILD:-$repo/build}
artifacts=${ARTIFACTS:-$build/test-artifacts/hubble-ui}
work=$(mktemp -d /tmp/hubble-ui-live.XXXXXX)
export CILIUM_LOCAL_NAME=${CILIUM_LOCAL_NAME:-hubble-ui-live} CILIUM_LOCAL_STATE=$work/state
tool=$repo/deploy/local/cilium-local
ui_pid=""
cleanup() {
  [[ -n $ui_pid ]] && kill "$ui_pid" 2>/dev/null && wait "$ui_pid" 2>/dev/null || true
  "$tool" down >/dev/null 2>&1 || "$tool" down || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/manifests" "$artifacts"
cp deploy/local/demo/manifests/*.yaml deploy/local/demo/policies/rule1.yaml "$work/manifests/"
"$tool" up --nodes 2 --manifests "$work/manifests" >/dev/null
"$tool" pods >/dev/null
ds=$("$tool" ip default/deathstar-1)
deadline=$((SECONDS + 30))
until "$tool" exec default/tiefighter -- cilium-http-client POST "http://$ds/v1/request-landing" \
  --timeout 1 >/dev/null 2>&1; do
  [[ $SECONDS -lt $deadline ]] || fail "the tiefighter cannot land on $ds"
  sleep 0.5
done
for _ in 1 2; do
  if "$tool" exec default/xwing -- cilium-http-client POST "http://$ds/v1/request-landing" \
    --timeout 2 >/dev/null 2>&1; then
    fail "the xwing landed although rule1 is in force"
  fi
done
node=$("$tool" node default/deathstar-1)
sock=$work/state/nodes/$node/agent/hubble.sock
"$build/agent/hubble/ui/hubble-ui" --server "unix://$sock" --listen-address 127.0.0.1:0 \
  2>"$work/ui.log" &
ui_pid=$!
deadline=$((SECONDS + 10))
until port=$(grep -o 'port=[0-9]*' "$work/ui.log" | head -1 | cut -d= -f2) && [[ -n $port ]]; do
  [[ $SECONDS -lt $deadline ]] || fail "hubble-ui did not start: $(cat "$work/ui.log")"
  sleep 0.1
done
url="http://127.0.0.1:$port/?namespace=default"
browse() {
  HOME=$work chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$work/chromium" --window-size=1400,1000 --virtual-time-budget=10000 "$@" "$url" \
    2>/dev/null
}
dom=$(browse --dump-dom)
for want in 'data-loaded="true"' \
  '<g class="edge dropped" data-from="default/xwing" data-to="default/deathstar" data-protocol="TCP" data-port="80"' \
  '<g class="edge forwarded" data-from="default/tiefighter" data-to="default/deathstar" data-protocol="TCP" data-port="80"' \
  'data-id="default/xwing"' 'data-id="default/deathstar"' '<tr class="flow verdict-DROPPED">'; do
  [[ $dom == *"$want"* ]] || fail "the page on $node lacks: $want"
done
browse --screenshot="$artifacts/live-$node.png" >/dev/null
echo "ok: hubble-ui on $node shows the xwing's dropped TCP/80 edge to the deathstar ($artifacts/live-$node.png)"
