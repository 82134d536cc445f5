#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test tier (unit, unit under
# ASan+UBSan, a libFuzzer smoke run of every fuzz target, bpf, netns, e2e), then prints a summary.
# The sanitizer pass and the fuzzers share one clang build (build-fuzz: ASan + UBSan + coverage in
# every library), so the libraries are compiled twice per run (gcc and clang), not three times.
# As root the privileged tiers must run; otherwise they are reported as skipped.
#
#   scripts/test.sh              everything
#   scripts/test.sh unit bpf     only these tiers ("asan" is the sanitizer pass of the unit tier,
#                                "fuzz" runs scripts/fuzz.sh on every target for
#                                $CILIUM_FUZZ_SMOKE_SECONDS, default 20, two at a time)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit asan fuzz bpf netns e2e)
have_clang() { command -v clang++ >/dev/null && command -v clang >/dev/null; }

./scripts/install-deps.sh
start=$(date +%s)
./scripts/build.sh
echo "build: $(( $(date +%s) - start )) s"

if [ "$(id -u)" -eq 0 ]; then
  export CILIUM_TEST_REQUIRE_PRIVILEGED=1
fi

declare -A result
status=0
total_passed=0
total_failed=0
total_skipped=0
for tier in "${tiers[@]}"; do
  echo
  echo "=== tier: $tier ==="
  if [ "$tier" = fuzz ]; then
    # libFuzzer needs clang (always installed in CI): without it the tier is skipped, not failed.
    if ! have_clang; then
      result[$tier]="skipped clang/clang++ not found: libFuzzer needs clang (scripts/install-deps.sh)"
      continue
    fi
    # A fresh corpus every run (seeds only), so a smoke run does not depend on earlier ones;
    # reproducers stay in build-fuzz/fuzz-smoke/<target>/findings until the next run.
    rm -rf build-fuzz/fuzz-smoke
    fuzz_summary=$(mktemp)
    ./scripts/fuzz.sh --time "${CILIUM_FUZZ_SMOKE_SECONDS:-20}" --jobs 2 \
      --corpus-dir "$root/build-fuzz/fuzz-smoke" --summary "$fuzz_summary" || true
    passed=$(grep -c ' ok ' "$fuzz_summary" || true)
    failed=$(grep -vc ' ok ' "$fuzz_summary" || true)
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    execs=$(sed -nE 's/.* execs=([0-9]+).*/\1/p' "$fuzz_summary" | awk '{s += $1} END {print s + 0}')
    if [ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]; then
      result[$tier]="ok      $passed targets x ${CILIUM_FUZZ_SMOKE_SECONDS:-20} s, $execs execs, no findings"
    elif [ $((passed + failed)) -eq 0 ]; then
      result[$tier]="FAILED  build-fuzz did not build"
      status=1
    else
      bad=$(grep -v ' ok ' "$fuzz_summary" | awk '{print $1 " " $2}' | paste -sd, - | sed 's/,/, /g')
      result[$tier]="FAILED  $bad (reproducers: build-fuzz/fuzz-smoke/<target>/findings)"
      status=1
    fi
    rm -f "$fuzz_summary"
    continue
  fi
  log=$(mktemp)
  if [ "$tier" = asan ]; then
    if ! have_clang; then
      result[$tier]="skipped clang/clang++ not found (scripts/install-deps.sh)"
      continue
    fi
    # The fuzz tier's configuration (scripts/fuzz.sh configures build-fuzz the same way).
    BUILD_DIR=build-fuzz BUILD_TARGET=unit_tests ./scripts/build.sh \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCILIUM_FUZZ=ON -DCILIUM_BUILD_BENCH=OFF
    (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest -L '^unit$' --output-on-failure -j2) 2>&1 | tee "$log" || true
  else
    (cd build && ctest -L "^${tier}\$" --output-on-failure) 2>&1 | tee "$log" || true
  fi
  summary=$(grep -E 'tests passed|No tests were found' "$log" | tail -1)
  skipped=$(grep -c 'Not Run\|\*\*\*Skipped' "$log" || true)
  # "N% tests passed, F tests failed out of T": T includes the sweep fixture and skipped tests.
  if [[ $summary =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=${BASH_REMATCH[1]}
    total=${BASH_REMATCH[2]}
    total_failed=$((total_failed + failed))
    total_skipped=$((total_skipped + skipped))
    total_passed=$((total_passed + total - failed - skipped))
  fi
  if grep -qE 'tests passed, 0 tests failed|100% tests passed' "$log"; then
    result[$tier]="ok      ${summary}; skipped: ${skipped}"
  elif grep -q 'No tests were found' "$log"; then
    result[$tier]="empty   no tests in this tier yet"
  else
    result[$tier]="FAILED  ${summary:-ctest did not finish}"
    status=1
  fi
  rm -f "$log"
done

echo
echo "=== summary ($(( $(date +%s) - start )) s) ==="
for tier in "${tiers[@]}"; do
  printf '  %-6s %s\n' "$tier" "${result[$tier]}"
done
if [ "$(id -u)" -ne 0 ]; then
  echo "  note: not root: the bpf, netns and e2e tiers were skipped"
fi
# Nothing a test made may outlive the run.
leftovers=$(ip netns list 2>/dev/null | grep -c '^cilt' || true)
if [ "$leftovers" -ne 0 ]; then
  echo "  LEAK: $leftovers test network namespace(s) remain"
  status=1
fi
# The closing line CI reads: every tier's tests added up.
echo "tests: ${total_passed} passed, ${total_failed} failed, ${total_skipped} skipped"
exit $status
