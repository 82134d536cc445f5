#!/usr/bin/env bash
# README command 1: the Star Wars demo of Cilium's getting-started guide on a local two-node
# cluster (real pods as network namespaces, a cilium-agent with its eBPF datapath on each node,
# the ships on node-1 and the Death Star on node-2 across a VXLAN overlay, identity-based policy
# from a manifests directory served by the cluster's API server). Installs what is missing,
# builds, runs every step, checks what it shows, and removes everything at the end. Exit status
# 0 only if every expectation held. CILIUM_DEMO_SKIP_BUILD=1 skips install and build (the e2e
# test sets it); CILIUM_DEMO_NAME names the cluster (default cilium-demo); CILIUM_DEMO_KEEP=1
# leaves it up at the end. --ipv6: a dual-stack cluster, and a step showing the same policy over
# IPv6.
set -euo pipefail
ipv6=0
for arg in "$@"; do
  case $arg in
    --ipv6) ipv6=1 ;;
    -h | --help) echo "usage: $0 [--ipv6]"; exit 0 ;;
    *) echo "demo: unknown argument '$arg' (usage: $0 [--ipv6])" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
repo=$(pwd)
if [[ ${CILIUM_DEMO_SKIP_BUILD:-0} != 1 ]]; then
  ./scripts/install-deps.sh
  ./scripts/build.sh
fi
[[ $EUID -eq 0 ]] || { echo "demo: run as root (sudo ./scripts/demo.sh)" >&2; exit 1; }

name=${CILIUM_DEMO_NAME:-cilium-demo}
work=$(mktemp -d "/tmp/$name.XXXXXX")
manifests=$work/manifests
export CILIUM_LOCAL_NAME=$name CILIUM_LOCAL_STATE=$work/state
tool=$repo/deploy/local/cilium-local
monitor_pid=""

if [[ -t 1 ]]; then
  bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' dim=$'\e[2m' off=$'\e[0m'
else
  bold="" green="" red="" dim="" off=""
fi
held=0
failed=0

cleanup() {
  [[ -n $monitor_pid ]] && kill "$monitor_pid" 2>/dev/null || true
  if [[ ${CILIUM_DEMO_KEEP:-0} == 1 ]]; then
    echo
    echo "Kept the cluster (CILIUM_DEMO_KEEP=1). Look around, then remove it with:"
    echo "  CILIUM_LOCAL_NAME=$name CILIUM_LOCAL_STATE=$work/state $tool down; rm -rf $work"
    return
  fi
  echo
  echo "${dim}Tearing down the cluster...${off}"
  "$tool" down >/dev/null 2>&1 || "$tool" down || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

heading() { echo; echo "${bold}$*${off}"; }
ok() { held=$((held + 1)); echo "  ${green}✔${off} $*"; }
bad() { failed=$((failed + 1)); echo "  ${red}✘ $*${off}"; }
indent() { sed 's/^/      /'; }

# request SHIP METHOD PATH TARGET: runs cilium-http-client in the ship's pod against the target
# (an address, [an IPv6 address]); sets last_rc (0 answered 2xx, 1 other answer, 3 refused, 4 timed
# out) and last_out.
request() {
  local ship=$1 method=$2 path=$3 target=$4
  echo "  ${dim}\$ cilium-local exec default/$ship -- cilium-http-client $method http://$target$path${off}"
  last_rc=0
  last_out=$("$tool" exec "default/$ship" -- cilium-http-client "$method" "http://$target$path" \
    --timeout 3 2>&1) || last_rc=$?
  echo "$last_out" | indent
}

# expect_landing SHIP TARGET: the ship is allowed to land.
expect_landing() {
  request "$1" POST /v1/request-landing "$2"
  if [[ $last_rc -eq 0 && $last_out == *"Ship landed"* ]]; then
    ok "$1 landed on $2"
  else
    bad "$1 did not land on $2 (client exit $last_rc)"
  fi
}

# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [[ $SECONDS -lt $deadline ]] || return 1
    sleep 0.2
  done
}

# observe WANT ARGS...: `cilium-local hubble ARGS` into $flows until its output contains every
# pattern in WANT (a |-separated list), for up to 5 s. Hubble answers with every flow whose packet
# passed before the query, so the first try normally holds; the wait covers a loaded machine.
observe() {
  local want=$1 deadline=$((SECONDS + 5)) pattern missing
  shift
  while :; do
    flows=$("$tool" hubble "$@" 2>&1 || true)
    missing=0
    IFS='|' read -ra patterns <<<"$want"
    for pattern in "${patterns[@]}"; do
      [[ $flows == *"$pattern"* ]] || missing=1
    done
    [[ $missing -eq 0 ]] && return 0
    [[ $SECONDS -lt $deadline ]] || return 1
    sleep 0.2
  done
}

ingress_enforced() { # POD -> 0 when the pod's endpoint enforces ingress policy
  local mode node
  node=$("$tool" node "default/$1") || return 1
  mode=$("$tool" dbg --node "$node" endpoint get "pod-name:default/$1" 2>/dev/null |
    jq -r '.[0]? // . | .status.policy.realized["policy-enabled"] // "none"' 2>/dev/null) || return 1
  [[ $mode == ingress || $mode == both ]]
}

echo "${bold}Star Wars demo${off}: the Empire's Death Star, a tiefighter and an Alliance xwing, as"
echo "pods on a local two-node cluster, a cilium-agent with its eBPF datapath on each node: the ships"
echo "on node-1, the Death Star on node-2 (Cilium's getting-started guide)."
[[ $ipv6 == 0 ]] || echo "Dual stack (--ipv6): every pod, node and the deathstar Service have an IPv6 address too."
up_args=(--nodes 2)
[[ $ipv6 == 0 ]] || up_args+=(--ipv6)

heading "Setup: two nodes on an underlay, the API server, the operator, an agent per node, the pods"
"$tool" down >/dev/null 2>&1 || true # a previous run that was killed
mkdir -p "$manifests"
cp deploy/local/demo/manifests/*.yaml "$manifests/"
echo "  manifests: $manifests ($(ls "$manifests" | tr '\n' ' '))"
"$tool" up "${up_args[@]}" --manifests "$manifests" -- --enable-l7-proxy 2>&1 | indent ||
  { bad "the cluster did not come up"; exit 1; }
"$tool" pods 2>&1 | indent || { bad "the pods were not created"; exit 1; }
ds1=$("$tool" ip default/deathstar-1)
ds2=$("$tool" ip default/deathstar-2)
cluster_ip=10.96.0.100
# The servers listen once their process runs: wait for both before the first landing.
for ip in "$ds1" "$ds2"; do
  wait_for 10 "$tool" exec default/tiefighter -- cilium-http-client POST \
    "http://$ip/v1/request-landing" --timeout 1 >/dev/null 2>&1 ||
    { bad "deathstar at $ip does not answer"; exit 1; }
done

# The Service when it answers (service load balancing in the agent); the pods themselves if not.
if "$tool" exec default/tiefighter -- cilium-http-client POST \
  "http://$cluster_ip/v1/request-landing" --timeout 2 >/dev/null 2>&1; then
  targets=("$cluster_ip")
  echo "  The deathstar Service ($cluster_ip:80) answers: the ships use it."
else
  targets=("$ds1" "$ds2")
  bad "the deathstar Service ($cluster_ip) does not answer: the ships address both pods directly"
fi

# Step 4's DNS server and the two hosts it names, on the outside host (started now, ready by
# then): dnsmasq on the outside host's address answers alderaan.galaxy.test (.201),
# deathstar-plans.galaxy.test (.202) and, were it asked, hoth.rebels.test (.203); one HTTP
# server answers on all three addresses.
outside_ip=$("$tool" ip outside)
for a in 201 202 203; do "$tool" outside -- ip addr add "172.30.0.$a/24" dev eth0; done
"$tool" outside -- dnsmasq --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null \
  --pid-file= --user=root --bind-interfaces "--listen-address=$outside_ip" --local-ttl=60 \
  --host-record=alderaan.galaxy.test,172.30.0.201 \
  --host-record=deathstar-plans.galaxy.test,172.30.0.202 \
  --host-record=hoth.rebels.test,172.30.0.203 >"$work/dnsmasq.log" 2>&1 &
"$tool" outside -- cilium-http-server --listen=0.0.0.0:80 "--route=GET /=200:Welcome to Alderaan" \
  >"$work/outside-http.log" 2>&1 &
disown -a # `down` ends them with the cluster (they run in its cgroup): no job notices then

heading "Step 1: no policy yet: both ships may land"
for t in "${targets[@]}"; do
  expect_landing tiefighter "$t"
  expect_landing xwing "$t"
done

echo
echo "  Every connection is a flow in Hubble, with who talked to whom, on both nodes:"
echo "  ${dim}\$ hubble observe --verdict FORWARDED --pod default/xwing --last 4   # on node-1${off}"
if observe FORWARDED --node node-1 observe --verdict FORWARDED --pod default/xwing --last 4; then
  echo "$flows" | indent
  ok "hubble on node-1 shows xwing's flows as FORWARDED"
else
  echo "$flows" | indent
  bad "hubble on node-1 shows no FORWARDED flow of xwing"
fi
echo "  ${dim}\$ hubble observe --verdict FORWARDED --from-pod default/xwing --last 4   # on node-2${off}"
if observe "FORWARDED|default/xwing" --node node-2 observe --verdict FORWARDED --from-pod default/xwing --last 4; then
  echo "$flows" | indent
  ok "hubble on node-2 shows xwing's packets arriving from node-1, by name"
else
  echo "$flows" | indent
  bad "hubble on node-2 shows no FORWARDED flow from default/xwing"
fi
echo "  And the whole cluster through hubble-relay, which cilium-local runs beside the agents:"
echo "  ${dim}\$ hubble --server unix://\$state/hubble-relay.sock observe --pod default/xwing --print-node-name --last 20${off}"
if observe "node-1]|node-2]" --relay observe --verdict FORWARDED --pod default/xwing \
  --print-node-name --last 20; then
  echo "$flows" | tail -n 4 | indent
  ok "hubble-relay shows xwing's flows from both nodes in one stream"
else
  echo "$flows" | tail -n 8 | indent
  bad "hubble-relay does not show xwing's flows from both nodes"
fi

heading "Step 2: rule1 (L3/L4): only org=empire may reach the deathstar, on TCP port 80"
sed -n '/^apiVersion/,$p' deploy/local/demo/policies/rule1.yaml | indent
echo "  ${dim}\$ cp rule1.yaml $manifests/   # what 'kubectl apply' is on this cluster${off}"
"$tool" dbg --node node-2 monitor --type drop >"$work/drops.log" 2>&1 &
monitor_pid=$!
cp deploy/local/demo/policies/rule1.yaml "$manifests/"
if wait_for 10 ingress_enforced deathstar-1 && wait_for 5 ingress_enforced deathstar-2; then
  ok "the agent read rule1 and both deathstar endpoints enforce ingress policy"
else
  bad "the deathstar endpoints do not enforce ingress policy 10 s after rule1 was applied"
fi
echo "  ${dim}\$ cilium-dbg endpoint list   # on node-2${off}"
"$tool" dbg --node node-2 endpoint list | indent
if ! ingress_enforced tiefighter && ! ingress_enforced xwing; then
  ok "the ships' endpoints are not selected by rule1 (no enforcement)"
else
  bad "a ship's endpoint enforces ingress policy, rule1 does not select it"
fi
for t in "${targets[@]}"; do
  request xwing POST /v1/request-landing "$t"
  if [[ $last_rc -eq 4 ]]; then
    ok "xwing's request to $t timed out: its packets are dropped"
  else
    bad "xwing's request to $t did not time out (client exit $last_rc)"
  fi
  expect_landing tiefighter "$t"
done
echo
echo "  An L3/L4 rule cannot tell one HTTP request from another: the tiefighter can also reach the"
echo "  exhaust port."
request tiefighter PUT /v1/exhaust-port "${targets[0]}"
if [[ $last_rc -eq 1 && $last_out == *"Panic: deathstar exploded"* ]]; then
  ok "tiefighter's PUT /v1/exhaust-port reached the deathstar (step 3's L7 rule would stop it)"
else
  bad "tiefighter's PUT /v1/exhaust-port did not reach the deathstar (client exit $last_rc)"
fi
echo
echo "  The drops, as node-2's datapath reported them:"
echo "  ${dim}\$ cilium-dbg monitor --type drop   # on node-2${off}"
if wait_for 5 grep -q "Policy denied" "$work/drops.log"; then
  grep -m 4 "Policy denied" "$work/drops.log" | indent
  ok "the drops are reported with reason \"Policy denied\""
else
  cat "$work/drops.log" | indent
  bad "no drop with reason \"Policy denied\" was reported"
fi
kill "$monitor_pid" 2>/dev/null || true
monitor_pid=""
echo "  ${dim}\$ hubble observe --verdict DROPPED --from-pod default/xwing --last 4   # on node-2${off}"
if observe "DROPPED|Policy denied|default/xwing" --node node-2 observe --verdict DROPPED --from-pod default/xwing --last 4; then
  echo "$flows" | indent
  ok "hubble on node-2 shows xwing's flows as DROPPED (Policy denied)"
else
  echo "$flows" | indent
  bad "hubble on node-2 shows no DROPPED flow of xwing with reason Policy denied"
fi

if [[ $ipv6 == 1 ]]; then
  heading "Step 2, over IPv6: rule1 names identities, not addresses: it holds for both families"
  cluster_ip6=fd00:96::100
  ds1_6=$("$tool" ip -6 default/deathstar-1)
  echo "  The deathstar Service also has $cluster_ip6; deathstar-1 is also $ds1_6."
  expect_landing tiefighter "[$cluster_ip6]"
  expect_landing tiefighter "[$ds1_6]"
  request xwing POST /v1/request-landing "[$cluster_ip6]"
  if [[ $last_rc -eq 4 ]]; then
    ok "xwing's request to [$cluster_ip6] timed out: its IPv6 packets are dropped as well"
  else
    bad "xwing's request to [$cluster_ip6] did not time out (client exit $last_rc)"
  fi
  echo "  ${dim}\$ hubble observe --ip-version v6 --verdict DROPPED --from-pod default/xwing --last 2   # on node-2${off}"
  if observe "DROPPED|Policy denied|default/xwing" --node node-2 observe --ip-version v6 \
    --verdict DROPPED --from-pod default/xwing --last 2; then
    echo "$flows" | indent
    ok "hubble on node-2 shows xwing's IPv6 flows as DROPPED (Policy denied)"
  else
    echo "$flows" | indent
    bad "hubble on node-2 shows no DROPPED IPv6 flow of xwing with reason Policy denied"
  fi
fi

heading "Step 3: L7 policy: only POST /v1/request-landing, PUT /v1/exhaust-port gets 403"
sed -n '/^apiVersion/,$p' deploy/local/demo/policies/rule1-l7.yaml | indent
echo "  ${dim}\$ cp rule1-l7.yaml $manifests/rule1.yaml   # rule1 again, now with rules.http${off}"
cp deploy/local/demo/policies/rule1-l7.yaml "$manifests/rule1.yaml"
# (grep without -q: it reads to the end, so the writer never dies of SIGPIPE under pipefail)
l7_in_force() { "$tool" dbg --node node-2 status 2>/dev/null | grep -E "Proxy Status:.* [1-9][0-9]* redirects active" >/dev/null; }
if wait_for 10 l7_in_force; then
  ok "the deathstar's port 80 is redirected to the L7 proxy"
else
  bad "no policy entry redirects to a proxy port 10 s after the L7 rule was applied"
fi
echo "  ${dim}\$ cilium-dbg status | grep Proxy   # on node-2${off}"
"$tool" dbg --node node-2 status | grep "Proxy" | indent || true
if "$tool" dbg --node node-2 status | grep "Proxy Status:.*cilium-proxy: connected" >/dev/null; then
  ok "cilium-dbg status shows the proxy connected and its ports"
else
  bad "cilium-dbg status shows no connected proxy"
fi
expect_landing tiefighter "${targets[0]}"
request tiefighter PUT /v1/exhaust-port "${targets[0]}"
if [[ $last_rc -eq 1 && $last_out == *"403 Forbidden"* && $last_out == *"Access denied"* ]]; then
  ok "tiefighter's PUT /v1/exhaust-port got 403 Access denied: the deathstar is safe"
else
  bad "tiefighter's PUT /v1/exhaust-port was not denied with 403 (client exit $last_rc)"
fi
request xwing POST /v1/request-landing "${targets[0]}"
if [[ $last_rc -eq 4 ]]; then
  ok "xwing's request still times out: L3/L4 drops it before any proxy"
else
  bad "xwing's request did not time out (client exit $last_rc)"
fi

heading "Step 4: DNS-aware policy (toFQDNs): the xwing may reach alderaan.galaxy.test, by name only"
sed -n '/^apiVersion/,$p' deploy/local/demo/policies/xwing-dns.yaml | indent
echo "  ${dim}\$ cp xwing-dns.yaml $manifests/${off}"
cp deploy/local/demo/policies/xwing-dns.yaml "$manifests/"
# dns QUERY NAME: cilium-dns-client in the xwing's pod against the outside host's dnsmasq; sets
# dns_out ("NOERROR 172.30.0.201", "REFUSED", ...).
dns() {
  dns_out=$("$tool" exec default/xwing -- cilium-dns-client "$outside_ip" "$1" --timeout 2 2>&1 || true)
}
# In force once the agent's DNS proxy answers for the xwing: a name the rule does not allow,
# which dnsmasq would answer, is REFUSED.
refused() { dns hoth.rebels.test; [[ $dns_out == REFUSED ]]; }
if wait_for 10 refused; then
  echo "  ${dim}\$ cilium-local exec default/xwing -- cilium-dns-client $outside_ip hoth.rebels.test${off}"
  echo "$dns_out" | indent
  ok "the DNS proxy answers REFUSED for hoth.rebels.test (no DNS rule allows it)"
else
  bad "the DNS proxy did not refuse hoth.rebels.test 10 s after xwing-dns was applied ($dns_out)"
fi
echo "  ${dim}\$ cilium-local exec default/xwing -- cilium-dns-client $outside_ip alderaan.galaxy.test${off}"
dns alderaan.galaxy.test
echo "$dns_out" | indent
if [[ $dns_out == "NOERROR 172.30.0.201" ]]; then
  request xwing GET / 172.30.0.201
  if [[ $last_rc -eq 0 && $last_out == *"Welcome to Alderaan"* ]]; then
    ok "xwing reached alderaan.galaxy.test (172.30.0.201) right after the answer: toFQDNs allows it"
  else
    bad "xwing could not reach alderaan.galaxy.test after resolving it (client exit $last_rc)"
  fi
else
  bad "alderaan.galaxy.test did not resolve to 172.30.0.201 ($dns_out)"
fi
echo "  ${dim}\$ cilium-local exec default/xwing -- cilium-dns-client $outside_ip deathstar-plans.galaxy.test${off}"
dns deathstar-plans.galaxy.test
echo "$dns_out" | indent
echo "  ${dim}\$ cilium-local exec default/xwing -- cilium-http-client GET http://172.30.0.202/${off}"
last_rc=0
last_out=$("$tool" exec default/xwing -- cilium-http-client GET http://172.30.0.202/ --timeout 1 2>&1) || last_rc=$?
echo "$last_out" | indent
if [[ $dns_out == "NOERROR 172.30.0.202" && $last_rc -eq 4 ]]; then
  ok "deathstar-plans.galaxy.test resolves, but its address stays denied: no toFQDNs selects it"
else
  bad "deathstar-plans.galaxy.test: answer \"$dns_out\", request exit $last_rc (want an answer and a timeout)"
fi
echo "  ${dim}\$ hubble observe --type l7 --protocol dns --from-pod default/xwing   # on node-1${off}"
if observe "DNS Query hoth.rebels.test.|dns-response FORWARDED (DNS Answer \"172.30.0.201\"" \
  --node node-1 observe --type l7 --protocol dns --pod default/xwing --last 20; then
  echo "$flows" | grep -E "hoth|alderaan" | tail -n 3 | indent
  ok "hubble shows the DNS queries and answers as L7 flows, the refused one DROPPED"
else
  echo "$flows" | tail -n 6 | indent
  bad "hubble shows no DNS L7 flows of the xwing"
fi
echo "  ${dim}\$ hubble observe --to-fqdn alderaan.galaxy.test --from-pod default/xwing   # on node-1${off}"
if observe "alderaan.galaxy.test:80" --node node-1 observe --to-fqdn alderaan.galaxy.test \
  --from-pod default/xwing --last 20; then
  echo "$flows" | grep "alderaan.galaxy.test:80" | tail -n 2 | indent
  ok "hubble names the xwing's connection by the name it looked up, from its DNS cache"
else
  echo "$flows" | tail -n 4 | indent
  bad "hubble shows no flow of the xwing to alderaan.galaxy.test by name"
fi

heading "Result"
if [[ $failed -eq 0 ]]; then
  echo "  ${green}All $held expectations held.${off}"
  exit 0
fi
echo "  ${red}$failed of $((held + failed)) expectations failed.${off} To look at the cluster afterwards"
echo "  (agent logs, cilium-dbg), rerun with CILIUM_DEMO_KEEP=1."
exit 1
