#!/usr/bin/env bash
# Builds canopy's libFuzzer targets (tests/fuzz) with clang, AddressSanitizer and UBSan in
# ./build-fuzz, then runs each from its committed seed corpus for CANOPY_FUZZ_SECONDS seconds
# (default 20). Fails on any crash, sanitizer report, leak or timeout; the input that caused it is
# kept in build-fuzz/artifacts/ (replay: build-fuzz/tests/fuzz/<target> <file>).
#   bash scripts/fuzz.sh                        # every target, 20 s each
#   CANOPY_FUZZ_SECONDS=300 bash scripts/fuzz.sh fuzz_gguf
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${CANOPY_FUZZ_SECONDS:-20}"
jobs=$(nproc)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCANOPY_FUZZ=ON -DCANOPY_CUDA=OFF -DCANOPY_WERROR=ON >/dev/null
cmake --build build-fuzz -j "$jobs" --target "${targets[@]}"

mkdir -p build-fuzz/artifacts
for target in "${targets[@]}"; do
  # New inputs the fuzzer finds go to a scratch folder; the committed corpus stays as it is.
  scratch="build-fuzz/corpus/$target"
  mkdir -p "$scratch"
  dict=()
  [ -f "tests/fuzz/$target.dict" ] && dict=("-dict=tests/fuzz/$target.dict")
  echo "fuzz.sh: $target for ${seconds}s"
  "build-fuzz/tests/fuzz/$target" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$target-" "$scratch" "tests/fuzz/corpus/$target"
done
echo "fuzz.sh: no crash in ${targets[*]}"
