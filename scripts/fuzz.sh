#!/usr/bin/env bash
# Builds the libFuzzer binaries (clang, ASan + UBSan, into ./build-fuzz) and fuzzes the targets
# of tests/fuzz/, a few at a time, then prints per target: time, execs, execs/s, coverage at the
# start and the end, corpus growth and the outcome. See docs/development.md ("Fuzzing").
#
#   scripts/fuzz.sh [target...] [--time S] [--jobs N] [--corpus-dir DIR] [--no-build]
#                   [-- libFuzzer flags...]
#
#   target        names as in tests/fuzz/corpus/<target>/ (default: every target)
#   --time S      seconds per target (default 300)
#   --jobs N      targets fuzzed at once, one process each (default 1; two cores: 2 at most)
#   --corpus-dir  where corpora and findings live, outside the repository (default
#                 $CILIUM_FUZZ_DIR or /var/tmp/cilium-fuzz): <dir>/<target>/corpus keeps what the
#                 fuzzer found between runs, <dir>/<target>/findings what crashed it
#   --no-build    use the binaries already in build-fuzz
#   --summary F   also append one line per target to F (for scripts/test.sh)
#
# A crash, sanitizer report, leak, timeout (-timeout, 10 s per input) or out-of-memory
# (-rss_limit_mb, 2048) fails the target; the reproducer is copied to the findings directory and
# the script prints how to reproduce it and how to add it to the seed corpus. Exit code 1 when
# any target failed, 2 for a usage error, 77 when clang is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

time_s=300
jobs=1
corpus_root=${CILIUM_FUZZ_DIR:-/var/tmp/cilium-fuzz}
build=1
summary_file=
targets=()
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --time) time_s=${2:?--time needs seconds}; shift 2 ;;
    --time=*) time_s=${1#*=}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --jobs=*) jobs=${1#*=}; shift ;;
    --corpus-dir) corpus_root=${2:?--corpus-dir needs a directory}; shift 2 ;;
    --corpus-dir=*) corpus_root=${1#*=}; shift ;;
    --no-build) build=0; shift ;;
    --summary) summary_file=${2:?--summary needs a file}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ $time_s =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --time must be a positive number" >&2; exit 2; }
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --jobs must be a positive number" >&2; exit 2; }

all_targets=()
for d in tests/fuzz/corpus/*/; do all_targets+=("$(basename "$d")"); done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -d "tests/fuzz/corpus/$t" ] || {
    echo "fuzz.sh: no target '$t' (targets: ${all_targets[*]})" >&2
    exit 2
  }
done

if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang/clang++ not found; libFuzzer needs clang (scripts/install-deps.sh)" >&2
  exit 77
fi

if [ $build -eq 1 ]; then
  start=$(date +%s)
  bins=()
  for t in "${targets[@]}"; do bins+=("${t}_fuzzer"); done
  # Only the fuzzers and the libraries they link (not the agent, tests or benchmarks). build.sh
  # configures (with ccache) and builds the first; the same ccache settings for the rest.
  BUILD_DIR=build-fuzz BUILD_TARGET="${bins[0]}" ./scripts/build.sh \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCILIUM_FUZZ=ON -DCILIUM_BUILD_BENCH=OFF
  if [ ${#bins[@]} -gt 1 ]; then
    export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$root")} CCACHE_NOHASHDIR=1
    cmake --build build-fuzz --target "${bins[@]:1}"
  fi
  echo "fuzz.sh: build-fuzz built in $(($(date +%s) - start)) s"
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# Runs one target; its log goes to $logs/<target>.log, its outcome to $logs/<target>.rc.
run_target() {
  local t=$1
  local bin=$root/build-fuzz/tests/fuzz/${t}_fuzzer
  local dir=$corpus_root/$t
  mkdir -p "$dir/corpus" "$dir/findings" "$dir/artifacts"
  if [ ! -x "$bin" ]; then
    echo "missing $bin (build it: cmake --build build-fuzz --target ${t}_fuzzer)" >"$logs/$t.log"
    echo 2 >"$logs/$t.rc"
    return
  fi
  local rc=0 dict=()
  # Syntax tokens and edge values (tests/fuzz/dict/<target>.dict) for the text formats.
  [ ! -f "$root/tests/fuzz/dict/$t.dict" ] || dict=(-dict="$root/tests/fuzz/dict/$t.dict")
  # The first directory collects new inputs; the seeds are read, never written.
  "$bin" -max_total_time="$time_s" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" "${dict[@]}" "${extra[@]}" "$dir/corpus" \
    "$root/tests/fuzz/corpus/$t" >"$logs/$t.log" 2>&1 || rc=$?
  echo $rc >"$logs/$t.rc"
}

echo "fuzz.sh: ${#targets[@]} target(s), ${time_s} s each, ${jobs} at a time; corpora in $corpus_root"
running=0
for t in "${targets[@]}"; do
  if [ $running -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
wait || true

final_stat() { grep -m1 "^stat::$2:" "$logs/$1.log" | awk '{print $2}'; }
cov_of() { grep -E "^#[0-9]+[[:space:]]+$2 " "$logs/$1.log" | tail -1 | sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/p'; }

failed=0
details=()
printf '\n%-26s %6s %11s %8s %15s %15s %8s  %s\n' target time execs exec/s "cov start->end" "ft start->end" corpus result
for t in "${targets[@]}"; do
  rc=$(cat "$logs/$t.rc")
  cp "$logs/$t.log" "$corpus_root/$t/last-run.log"
  execs=$(final_stat "$t" number_of_executed_units)
  eps=$(final_stat "$t" average_exec_per_sec)
  read -r cov0 ft0 _ <<<"$(cov_of "$t" INITED)" || true
  read -r cov1 ft1 corp1 <<<"$(cov_of "$t" DONE)" || true
  if [ -z "${cov1:-}" ]; then
    # No DONE line (a finding ended the run): the last progress line.
    read -r cov1 ft1 corp1 <<<"$(grep -E '^#[0-9]+[[:space:]]' "$logs/$t.log" | tail -1 |
      sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/p')" || true
  fi
  artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$logs/$t.log" | tail -1)
  if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
    result=ok
  else
    failed=$((failed + 1))
    details+=("$t")
    case $(basename "${artifact:-none}") in
      crash-*) result="CRASH" ;;
      leak-*) result="LEAK" ;;
      timeout-*) result="TIMEOUT" ;;
      oom-*) result="OOM" ;;
      slow-unit-*) result="SLOW" ;;
      *) result="FAILED (exit $rc)" ;;
    esac
    if [ -n "$artifact" ] && [ -f "$artifact" ]; then
      cp "$artifact" "$corpus_root/$t/findings/"
      echo "$corpus_root/$t/findings/$(basename "$artifact")" >"$logs/$t.finding"
    fi
  fi
  printf '%-26s %5ss %11s %8s %15s %15s %8s  %s\n' "$t" "$time_s" "${execs:--}" "${eps:--}" \
    "${cov0:-?}->${cov1:-?}" "${ft0:-?}->${ft1:-?}" "${corp1:--}" "$result"
  [ -z "$summary_file" ] ||
    echo "$t $result execs=${execs:-0} exec/s=${eps:-0} cov=${cov1:-0}" >>"$summary_file"
done

for t in "${details[@]}"; do
  echo
  echo "---- $t: the fuzzer's report (full log: $corpus_root/$t/last-run.log)"
  # From the first report line on, without libFuzzer's progress lines and the shadow-byte legend.
  awk '/ERROR:|runtime error:|ALARM:|out-of-memory|deadly signal|LeakSanitizer|terminate called/{p=1} p' \
    "$logs/$t.log" | grep -vE 'NEW_FUNC|^#[0-9]+[[:space:]]|Shadow byte|^ +(Addressable|Partially|Heap|Freed|Stack|Global|Poisoned|Container|Array|Intra|ASan|Left|Right)' |
    head -40 | sed 's/^/    /'
  if [ -f "$logs/$t.finding" ]; then
    keep=$(cat "$logs/$t.finding")
    cat <<EOF
    reproducer: $keep
    reproduce:  build-fuzz/tests/fuzz/${t}_fuzzer $keep
    minimize:   build-fuzz/tests/fuzz/${t}_fuzzer -minimize_crash=1 -runs=100000 $keep
    after the fix, keep it as a seed (the unit-tier test fuzz_$t replays every seed):
                cp $keep tests/fuzz/corpus/$t/<what-it-found>
EOF
  fi
done
echo
echo "fuzz.sh: $((${#targets[@]} - failed)) of ${#targets[@]} target(s) ran clean; logs in $corpus_root/<target>/last-run.log"
[ $failed -eq 0 ]
