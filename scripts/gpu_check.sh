#!/usr/bin/env bash
# canopy's GPU check, on a machine with an NVIDIA GPU (H100, CUDA 13) and no network.
#
#   CANOPY_MODEL=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf bash scripts/gpu_check.sh [all|build|check]
#
#   build  configure and build (CUDA on, Release, -Werror, every core) into build-gpu/, only the
#          targets the check needs (canopy, test_gpu); incremental
#   check  1. ctest -L gpu --output-on-failure (every GPU test; each prints "[ measured ]" lines)
#          2. compute-sanitizer memcheck on small GPU tests (the model ops and a tiny model)
#          3. canopy generate --device cuda vs --device cpu on SmolLM2, greedy, 32 tokens, compared
#          4. the random Llama-3-8B decode benchmark, op by op vs CUDA graphs (CANOPY_SKIP_BENCH=1
#             skips it)
#   all    both (the default)
# A summary comes last. Logs go to build-gpu/logs and, when $OUT is set (the device tool), to $OUT.
# When .carry/gpu-deps/root exists (scripts/gpu_deps.sh), the build takes its libraries from there.
# Without CANOPY_MODEL (or scripts/fetch_model.sh's cache) the SmolLM2 parts skip.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stage=${1:-all}
build=$root/build-gpu
logs=$build/logs
mkdir -p "$logs"
summary=()
failed=0
note() { summary+=("$1"); echo "gpu_check: $1"; }
bad() { note "FAILED: $1"; failed=1; }

deps=$root/.carry/gpu-deps/root
cmake_extra=()
if [ -d "$deps" ]; then
  export PATH=$deps/usr/bin:$PATH
  export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG_LIBDIR=$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=$deps
  cmake_extra=(-DCMAKE_PREFIX_PATH="$deps/usr")
fi
export PATH=/usr/local/cuda/bin:$PATH

finish() {
  echo
  echo "================ gpu_check summary ================"
  for line in "${summary[@]}"; do echo "$line"; done
  echo "result: $([ $failed = 0 ] && echo PASS || echo FAIL)"
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    printf '%s\n' "${summary[@]}" >"$OUT/summary.txt"
    for f in build.log ctest.log sanitizer.log generate.log bench.log; do
      [ -f "$logs/$f" ] && tail -c 8000000 "$logs/$f" >"$OUT/$f"
    done
  fi
  exit $failed
}

if [ "$stage" = all ] || [ "$stage" = build ]; then
  while read -r l; do note "device: $l"; done < <(nvidia-smi -L 2>/dev/null | head -4)
  note "nvcc: $(nvcc --version | tail -2 | head -1)"
  start=$(date +%s)
  if cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCANOPY_CUDA=ON -DCANOPY_WERROR=ON -DCANOPY_BENCH=OFF \
      "${cmake_extra[@]}" >"$logs/build.log" 2>&1 &&
     cmake --build "$build" -j "$(nproc)" --target canopy test_gpu >>"$logs/build.log" 2>&1; then
    note "build: ok ($(($(date +%s) - start)) s, $(nproc) cores)"
  else
    tail -40 "$logs/build.log"
    bad "build (see build.log)"
    finish
  fi
fi
[ "$stage" = build ] && finish

if [ -z "${CANOPY_MODEL:-}" ] && [ -s "$HOME/.cache/canopy/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  export CANOPY_MODEL=$HOME/.cache/canopy/SmolLM2-135M-Instruct.Q4_1.gguf
fi
if [ -n "${CANOPY_MODEL:-}" ] && [ -s "$CANOPY_MODEL" ]; then
  note "model: $CANOPY_MODEL"
else
  note "model: none (SmolLM2 tests and the generate comparison skip; set CANOPY_MODEL)"
  unset CANOPY_MODEL
fi

# 1. the GPU tests
start=$(date +%s)
ctest --test-dir "$build" -L gpu --output-on-failure -V >"$logs/ctest.log" 2>&1
ctest_rc=$?
result=$(grep -E "tests passed|tests failed" "$logs/ctest.log" | tail -1)
skipped=$(grep -cE "Test +#[0-9]+: .*Skipped" "$logs/ctest.log")
if [ $ctest_rc = 0 ]; then
  note "ctest -L gpu: ${result:-no result line} ($skipped skipped, $(($(date +%s) - start)) s)"
else
  bad "ctest -L gpu: ${result:-no result line} (see ctest.log)"
  while read -r l; do note "  $l"; done < <(grep -A200 "The following tests FAILED" "$logs/ctest.log" | head -40)
fi
while read -r l; do note "$l"; done < <(grep -h "\[ measured \]" "$logs/ctest.log" | sed 's/^[0-9]*: //' | sort -u)
while read -r l; do note "$l"; done < <(grep -h "^[0-9]*:   " "$logs/ctest.log" |
  grep -E "near-tie|identical|equal for|then " | sed 's/^[0-9]*: //' | sort -u | head -20)

# 2. compute-sanitizer memcheck on small GPU tests
if command -v compute-sanitizer >/dev/null; then
  filter='CudaOps.*:CudaSampler.DeterministicAndIndependentOfTheBatch:CudaTinyModel.LogitsMatchCpu/tiny_qwen2'
  compute-sanitizer --tool memcheck --error-exitcode 3 "$build/tests/test_gpu" --gtest_filter="$filter" \
    >"$logs/sanitizer.log" 2>&1
  rc=$?
  errors=$(grep -E "ERROR SUMMARY" "$logs/sanitizer.log" | tail -1)
  if [ $rc = 0 ]; then note "compute-sanitizer memcheck ($filter): ${errors:-no summary}"; else bad "compute-sanitizer memcheck: ${errors:-exit $rc} (see sanitizer.log)"; fi
else
  bad "compute-sanitizer not found"
fi

# 3. canopy generate on the GPU vs the CPU, greedy
if [ -n "${CANOPY_MODEL:-}" ]; then
  ids=$(python3 -c "import json; print(' '.join(map(str, json.load(open('tests/data/smollm2_golden.json'))['cases'][0]['prompt'])))")
  : >"$logs/generate.log"
  for dev in cpu cuda; do
    "$build/canopy" generate -m "$CANOPY_MODEL" --prompt-ids "$ids" --temperature 0 --max-tokens 32 --ignore-eos \
      --device "$dev" -v >"$logs/generate_$dev.out" 2>"$logs/generate_$dev.err"
    echo "rc=$? device=$dev" >>"$logs/generate.log"
    cat "$logs/generate_$dev.out" "$logs/generate_$dev.err" >>"$logs/generate.log"
  done
  cpu_out=$(cat "$logs/generate_cpu.out")
  gpu_out=$(cat "$logs/generate_cuda.out")
  if [ -z "$gpu_out" ]; then
    bad "canopy generate --device cuda produced nothing (see generate.log)"
  elif [ "$cpu_out" = "$gpu_out" ]; then
    note "canopy generate, SmolLM2 greedy, 32 tokens: --device cuda == --device cpu"
  else
    first=$(python3 -c "
a, b = '''$cpu_out'''.split(), '''$gpu_out'''.split()
print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))))")
    note "canopy generate, SmolLM2 greedy: --device cuda differs from cpu from token $first (a near-tie? see CudaSmolLM2 above)"
  fi
  while read -r l; do note "generate --device cuda: $l"; done < <(grep -h "decode" "$logs/generate_cuda.err" | tail -1)
  # The text form too, when this build has the tokenizer.
  if "$build/canopy" generate -m "$CANOPY_MODEL" -p "The capital of France is" --temperature 0 --max-tokens 24 \
      --device cuda >"$logs/generate_text.out" 2>>"$logs/generate.log"; then
    note "generate -p text on cuda: $(tr '\n' ' ' <"$logs/generate_text.out" | cut -c1-120)"
  fi
fi

# 4. the benchmark
if [ "${CANOPY_SKIP_BENCH:-0}" != 1 ]; then
  CANOPY_GPU_BENCH=1 "$build/tests/test_gpu" --gtest_filter='CudaBench.*' >"$logs/bench.log" 2>&1 ||
    bad "CudaBench (see bench.log)"
  while read -r l; do note "$l"; done < <(grep -h "\[ measured \]" "$logs/bench.log")
fi
finish
