#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and runs the demo as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./build/tests/demo/cilium-demo-counters
