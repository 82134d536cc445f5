#!/usr/bin/env bash
# Installs, idempotently, every Debian 12 package that building, testing and the demo need.
# Safe to run repeatedly: it only calls apt-get when a package is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential g++ cmake ninja-build pkg-config git ccache
  clang llvm libclang-rt-14-dev clang-format clang-tidy
  # eBPF
  libbpf-dev libelf-dev zlib1g-dev bpftool linux-libc-dev
  # libraries chosen for the project (docs/development.md says why each)
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libre2-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libboost-dev libcli11-dev
  # cpp-httplib is built with OpenSSL, zlib and brotli, and its header includes theirs; the
  # Kubernetes client also calls OpenSSL itself
  libcpp-httplib-dev libssl-dev libbrotli-dev
  # libyaml: the one YAML library (yaml-cpp 0.7 hangs on malformed input)
  libyaml-dev libgtest-dev libgmock-dev libbenchmark-dev
  # the L7 proxy: HTTP/1.1 parser, HTTP/2 (gRPC), RE2 for the rules' regexes (docs/l7.md)
  libhttp-parser-dev libnghttp2-dev libre2-dev
  # the Prometheus registry and text exposition (prometheus-cpp's core library)
  prometheus-cpp-dev
  # network namespaces and traffic for tests, benchmarks (iperf3, wrk) and the demo
  iproute2 iputils-ping util-linux procps iperf3 wrk curl ethtool
  # HTTP/2 server and client for the L7 proxy's netns test (h2c, docs/l7.md)
  nghttp2-server nghttp2-client
  # JSON on the command line for the local node tool and the demo (deploy/local, scripts/demo.sh)
  jq
  # python3 packs the containerd test's pause image (tests/e2e/pause/make_image.py); python3-yaml
  # reads the rendered chart's certificates (tests/agent/hubble/relay/chart_tls.py)
  python3 python3-yaml
  # kvstore mode: etcd's v3 API .proto files (the C++ client is generated from them at build
  # time, with the gogo and googleapis protos they import) and a real etcd for the tests
  golang-etcd-server-dev golang-github-gogo-protobuf-dev
  golang-github-grpc-ecosystem-grpc-gateway-dev etcd-server etcd-client
  # Prometheus server and promtool for the metrics e2e test
  prometheus
  # kube-proxy-style rules for the service LB benchmark (inside its own namespace only)
  iptables
  # Kubernetes client tests: openssl makes the TLS test certificates (kubectl for the e2e test is
  # preinstalled on the project machines; the test skips without it)
  openssl
  # a real CNI caller for the containerd e2e test (run privately by the test, never as a service);
  # containernetworking-plugins for the loopback plugin containerd's CRI always runs
  containerd runc containernetworking-plugins
  # a real DNS server behind the DNS proxy in the toFQDNs netns test (dnsmasq-base: the binary
  # only, no system service; the test runs it in a namespace of its own)
  dnsmasq-base
  # OCI images built offline (scripts/build-images.sh): buildah (FROM scratch, vfs storage) and the
  # static busybox the agent image's init-container helpers run on
  buildah busybox-static
  # Hubble UI's page is tested in headless Chromium (tests/agent/hubble/ui; skipped without it)
  chromium
  # the Helm chart's checks (tests/deploy/helm, docs/install.md): helm-template is Go with Helm's
  # template libraries (GOPATH mode, offline), node + npm validate the rendered objects against the
  # Kubernetes schemas (kubernetes-models, pinned by package-lock.json), yamllint lints them;
  # promtool (prometheus, above) checks and tests the alerts
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev
  golang-github-xeipuuv-gojsonschema-dev nodejs yamllint
)
# Debian's npm is its own package; NodeSource's nodejs (preinstalled on the project machines)
# ships npm and conflicts with it
if ! command -v npm >/dev/null; then
  packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
