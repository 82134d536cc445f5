#!/usr/bin/env bash
# Builds the OCI image archives of deploy/images/<name>/Containerfile offline, from the build
# directory's binaries, with buildah (FROM scratch, vfs storage, fixed timestamps).
#
# usage: scripts/build-images.sh [--build-dir DIR] [--out DIR] [--registry REG] [--version V]
#                                [--keep-context] [image...]
#
# Images: cilium, operator, hubble-relay, hubble-ui (all without arguments). Each becomes
# <out>/<image>.tar (default <build-dir>/images), an OCI image layout in a tar named
# <registry>/<image>:<version> (default quay.io/cilium-cpp/<image>:<project version>), which
# `ctr -n k8s.io images import <tar>` takes as it is.
#
# For each image the script stages a build context: the files of deploy/images/<image>/, and
# rootfs/ with the binaries listed in its `binaries` file (debug sections stripped), the shared
# libraries they load (their ldd closure) and the dynamic loader in Debian's merged-/usr layout,
# CA certificates, passwd/group/nsswitch.conf, the machine's own binaries listed in
# `host-binaries` (at the same path, with their libraries), and busybox with the applets listed
# in `busybox-applets`, when there are such files. No network is used: the Containerfiles start
# FROM scratch and buildah never pulls.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
out=""
registry=quay.io/cilium-cpp
version=""
keep_context=0
images=()
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --registry) registry=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --keep-context) keep_context=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-images: unknown option $1" >&2; exit 2 ;;
    *) images+=("$1"); shift ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(cilium operator hubble-relay hubble-ui)
build_dir=$(realpath "$build_dir")
out=$(realpath -m "${out:-$build_dir/images}")
if [ -z "$version" ]; then
  version=$(sed -n 's/^project(cilium-cpp VERSION \([^ )]*\).*/\1/p' CMakeLists.txt)
  [ -n "$version" ] || { echo "build-images: no project version in CMakeLists.txt" >&2; exit 1; }
fi
for tool in buildah ldd objcopy; do
  command -v "$tool" >/dev/null ||
    { echo "build-images: $tool is missing (run scripts/install-deps.sh)" >&2; exit 1; }
done
for image in "${images[@]}"; do
  [ -f "deploy/images/$image/Containerfile" ] ||
    { echo "build-images: no image named $image (deploy/images/$image/Containerfile)" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/cilium-images.XXXXXX")
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
cleanup() {
  buildah "${store[@]}" rmi --all >/dev/null 2>&1 || true
  if [ "$keep_context" = 1 ]; then echo "build-images: contexts kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Copies a file to the same absolute path under $1, with /lib, /lib64, /bin and /sbin folded into
# /usr as Debian 12 has them (the rootfs has those four as symlinks into /usr).
install_at_path() {
  local root=$1 path=$2
  local dir
  dir=$(realpath "$(dirname "$path")")
  mkdir -p "$root$dir"
  cp -L --preserve=mode "$path" "$root$dir/$(basename "$path")"
}

# The shared libraries and the loader an ELF file needs, one path a line (ldd's resolution, the
# one the loader makes on this machine). Fails on a library that is not found.
library_closure() {
  local elf=$1 out
  if ! out=$(ldd "$elf" 2>&1); then
    # Static executables have no closure.
    if grep -q 'not a dynamic executable\|statically linked' <<<"$out"; then return 0; fi
    echo "build-images: ldd $elf: $out" >&2
    return 1
  fi
  if grep -q 'not found' <<<"$out"; then
    echo "build-images: $elf needs libraries that are not installed:" >&2
    grep 'not found' <<<"$out" >&2
    return 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

stage_rootfs() {
  local image=$1 root=$2
  mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc/ssl/certs,run,tmp,var,root}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  ln -s ../run "$root/var/run"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  local rel bin
  local -a elves=()
  while read -r rel; do
    case $rel in ''|'#'*) continue ;; esac
    bin=$build_dir/$rel
    [ -x "$bin" ] || { echo "build-images: $bin is not built (cmake --build $build_dir)" >&2; return 1; }
    # Debug sections only: symbols stay, so backtraces still name functions.
    objcopy --strip-debug "$bin" "$root/usr/bin/$(basename "$rel")"
    elves+=("$bin")
  done <"deploy/images/$image/binaries"
  if [ -f "deploy/images/$image/host-binaries" ]; then
    while read -r bin; do
      case $bin in ''|'#'*) continue ;; esac
      [ -x "$bin" ] || { echo "build-images: $bin is missing (run scripts/install-deps.sh)" >&2; return 1; }
      install_at_path "$root" "$bin"
      elves+=("$bin")
    done <"deploy/images/$image/host-binaries"
  fi
  if [ -f "deploy/images/$image/busybox-applets" ]; then
    [ -x /bin/busybox ] || { echo "build-images: /bin/busybox is missing (busybox-static)" >&2; return 1; }
    if ldd /bin/busybox >/dev/null 2>&1; then
      echo "build-images: /bin/busybox is not static (install busybox-static)" >&2
      return 1
    fi
    cp /bin/busybox "$root/usr/bin/busybox"
    local applet
    while read -r applet; do
      case $applet in ''|'#'*) continue ;; esac
      ln -s busybox "$root/usr/bin/$applet"
    done <"deploy/images/$image/busybox-applets"
  fi
  local lib
  for bin in "${elves[@]}"; do
    library_closure "$bin" >"$work/closure" || return 1
    while read -r lib; do install_at_path "$root" "$lib"; done <"$work/closure"
  done
  # What the binaries open at run time besides libraries: the CA bundle (Kubernetes, etcd and
  # Hubble TLS clients fall back to it), user names, and how names resolve (hosts, then DNS).
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

mkdir -p "$out"
for image in "${images[@]}"; do
  ctx=$work/$image
  mkdir -p "$ctx"
  cp -a "deploy/images/$image/." "$ctx/"
  stage_rootfs "$image" "$ctx/rootfs"
  ref=$registry/$image:$version
  buildah "${store[@]}" bud --quiet --format oci --timestamp 0 --layers=false \
    --file "$ctx/Containerfile" --tag "$ref" "$ctx" >/dev/null
  rm -f "$out/$image.tar"
  buildah "${store[@]}" push --quiet "$ref" "oci-archive:$out/$image.tar:$ref"
  manifest=$(tar -xOf "$out/$image.tar" index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
  printf '%-13s %-45s %8s KiB  %s  %s\n' "$image" "$ref" "$(($(stat -c %s "$out/$image.tar") / 1024))" \
    "${manifest:0:19}" "$out/$image.tar"
  rm -rf "$ctx"
done
