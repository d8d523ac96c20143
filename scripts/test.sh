#!/usr/bin/env bash
# Builds canopy and runs its CPU test suite (GPU tests are built and skip without a GPU).
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CANOPY_MODEL="$(bash scripts/fetch_model.sh)"
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
if [ -x scripts/fuzz.sh ]; then bash scripts/fuzz.sh; fi
