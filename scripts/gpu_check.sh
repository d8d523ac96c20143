#!/usr/bin/env bash
# canopy's GPU check of the CUDA model backend, on a machine with an NVIDIA GPU (H100, CUDA 13),
# 16 cores and no network. Two stages, each well inside a 10-minute device call:
#
#   bash scripts/gpu_check.sh build                   # configure + build canopy and test_gpu (~5 min)
#   CANOPY_MODEL=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf bash scripts/gpu_check.sh check
#   bash scripts/gpu_check.sh all                     # both, when time allows
#
#   build  CUDA on, Release, sm_90a, every core, into build-gpu/ (ignored by git, so it stays on a
#          warm machine between calls); if configuring fails for want of libraries, the Debian
#          packages in .carry/debs (bench/attention/fetch_carry.sh) are unpacked and used.
#   check  1. ctest -L gpu --output-on-failure, one test at a time (the tests print "[ measured ]"
#             lines: tolerances used, graph timings, near-ties, sampler statistics);
#          2. compute-sanitizer memcheck on the small GPU tests of the model backend;
#          3. canopy generate --device cuda vs --device cpu on SmolLM2 (the tiny Llama without it),
#             greedy, 32 tokens, compared;
#          4. the random-weight Llama-3-8B decode benchmark, op by op vs CUDA graphs
#             (CANOPY_SKIP_BENCH=1 skips it).
# The summary comes last. Logs: build-gpu/logs, and $OUT when set (the device tool's output folder).
# CANOPY_MODEL names the SmolLM2 GGUF (carried in an ignored folder); without it those parts skip.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
build=$PWD/build-gpu
logs=$build/logs
mkdir -p "$logs"
export PATH=/usr/local/cuda/bin:$PATH
START=$SECONDS
BUDGET=${BUDGET:-570}  # seconds: a device call may run 600; every step is capped to leave the summary
# cap WANT: WANT seconds, or what the budget has left (less a margin), at least 10.
cap() { local l=$((BUDGET - (SECONDS - START) - 30)); ((l < 10)) && l=10; ((${1} < l)) && echo "$1" || echo "$l"; }
summary=()
failed=0
note() { summary+=("$1"); echo "gpu_check: $1"; }
bad() { note "FAILED: $1"; failed=1; }

finish() {
  echo
  echo "================ gpu_check summary ($((SECONDS - START)) s) ================"
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

# The libraries of .carry/debs, for a machine without the Debian dev packages.
use_carried_debs() {
  local sysroot=/tmp/canopy-sysroot
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  for d in .carry/debs/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
  find "$sysroot" -name '*.pc' -exec sed -i "s#^prefix=/usr#prefix=$sysroot/usr#" {} +
  export CMAKE_PREFIX_PATH="$sysroot/usr"
  export PKG_CONFIG_PATH="$sysroot/usr/lib/x86_64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig:${PKG_CONFIG_PATH:-}"
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  command -v pkg-config >/dev/null || export PATH="$PATH:$sysroot/usr/bin"
  export CPATH="$sysroot/usr/include:${CPATH:-}"
  export LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu:${LIBRARY_PATH:-}"
}
# A build made with the carried libraries needs them at run time too.
[ -d /tmp/canopy-sysroot/usr/lib/x86_64-linux-gnu ] &&
  export LD_LIBRARY_PATH="/tmp/canopy-sysroot/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"

if [ "$stage" = all ] || [ "$stage" = build ]; then
  while read -r l; do note "device: $l"; done < <(nvidia-smi -L 2>/dev/null | head -4)
  note "nvcc: $(nvcc --version | tail -2 | head -1); $(nproc) cores"
  # -Werror stays off here: the machine's compiler may warn where the development one does not.
  args=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCANOPY_CUDA=ON -DCANOPY_CUDA_ARCHS=90a
        -DCANOPY_WERROR=OFF -DCANOPY_BENCH=OFF)
  if ! cmake "${args[@]}" >"$logs/build.log" 2>&1; then
    if ls .carry/debs/*.deb >/dev/null 2>&1; then
      note "configure failed; using the carried Debian packages (.carry/debs)"
      rm -rf "$build"
      mkdir -p "$logs"
      use_carried_debs
      cmake "${args[@]}" >"$logs/build.log" 2>&1 || { tail -30 "$logs/build.log"; bad "configure (build.log)"; finish; }
    else
      tail -30 "$logs/build.log"
      bad "configure (build.log; carry .carry/debs from bench/attention/fetch_carry.sh if libraries are missing)"
      finish
    fi
  fi
  t0=$SECONDS
  if timeout "$(cap 480)" cmake --build "$build" -j "$(nproc)" --target canopy test_gpu >>"$logs/build.log" 2>&1; then
    note "build: ok ($((SECONDS - t0)) s)"
  else
    grep -E "error" "$logs/build.log" | head -20
    bad "build (build.log)"
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
  note "model: none (the SmolLM2 tests and the generate comparison skip; set CANOPY_MODEL)"
  unset CANOPY_MODEL
fi
[ -x "$build/tests/test_gpu" ] || { bad "no build in build-gpu: run the build stage first"; finish; }

# 1. the GPU tests: four at a time, then alone the two that measure memory or time
t0=$SECONDS
serial='CudaBackend.MemoryBudgetsAndTheirErrors|CudaGraphs.ReplaysMatchEagerStepsAndTimeThem'
timeout "$(cap 240)" ctest --test-dir "$build" -L gpu -E "$serial" -j 4 --timeout 200 --output-on-failure -V \
  >"$logs/ctest.log" 2>&1
rc=$?
timeout "$(cap 90)" ctest --test-dir "$build" -L gpu -R "$serial" --timeout 80 --output-on-failure -V \
  >>"$logs/ctest.log" 2>&1
rc2=$?
[ $rc = 0 ] && rc=$rc2
result=$(grep -E "[0-9]+% tests passed" "$logs/ctest.log" | tr "\n" " ")
skipped=$(grep -cE "Test +#[0-9]+: .*Skipped" "$logs/ctest.log")
if [ $rc = 0 ]; then
  note "ctest -L gpu: ${result:-no result line} ($skipped skipped, $((SECONDS - t0)) s)"
else
  bad "ctest -L gpu (exit $rc): ${result:-no result line} (ctest.log)"
  while read -r l; do note "  $l"; done < <(grep -A40 "The following tests FAILED" "$logs/ctest.log" | head -40)
fi
while read -r l; do note "$l"; done < <(grep -h "\[ measured \]" "$logs/ctest.log" | sed 's/^[0-9]*: //' | sort -u)
while read -r l; do note "$l"; done < <(grep -hE "^[0-9]+:   .*(near-tie|identical|equal to the CPU|then )" \
  "$logs/ctest.log" | sed 's/^[0-9]*: //' | sort -u | head -24)

# 2. compute-sanitizer memcheck on the model backend's small GPU tests
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$san" ]; then
  filter='CudaOps.*:CudaSampler.DeterministicAndIndependentOfTheBatch:CudaTinyModel.LogitsMatchCpu/tiny_qwen2'
  timeout "$(cap 150)" "$san" --tool memcheck --error-exitcode 3 "$build/tests/test_gpu" --gtest_filter="$filter" \
    >"$logs/sanitizer.log" 2>&1
  rc=$?
  summary_line=$(grep -E "ERROR SUMMARY" "$logs/sanitizer.log" | tail -1)
  passed=$(grep -cE "^\[       OK \]" "$logs/sanitizer.log")
  if [ $rc = 0 ]; then
    note "compute-sanitizer memcheck, $passed tests ($filter): ${summary_line:-no summary}"
  else
    bad "compute-sanitizer memcheck (exit $rc: 3 errors found, 124 timed out): ${summary_line:-} (sanitizer.log)"
  fi
else
  bad "compute-sanitizer not found"
fi

# 3. canopy generate on the GPU vs the CPU, greedy (SmolLM2, or the tiny Llama without it)
if [ -n "${CANOPY_MODEL:-}" ]; then
  gen_model=$CANOPY_MODEL
  golden=tests/data/smollm2_golden.json
else
  gen_model=tests/data/models/tiny-llama
  golden=tests/data/models/tiny-llama/golden.json
fi
gen_name=$(basename "$gen_model")
ids=$(python3 -c "import json; print(' '.join(map(str, json.load(open('$golden'))['cases'][0]['prompt'])))")
: >"$logs/generate.log"
for dev in cpu cuda; do
  timeout "$(cap 120)" "$build/canopy" generate -m "$gen_model" --prompt-ids "$ids" --temperature 0 --max-tokens 32 \
    --ignore-eos --device "$dev" -v >"$logs/generate_$dev.out" 2>"$logs/generate_$dev.err"
  echo "exit $? (--device $dev)" >>"$logs/generate.log"
  cat "$logs/generate_$dev.out" "$logs/generate_$dev.err" >>"$logs/generate.log"
done
cpu_out=$(cat "$logs/generate_cpu.out")
gpu_out=$(cat "$logs/generate_cuda.out")
if [ -z "$gpu_out" ]; then
  bad "canopy generate --device cuda printed nothing (generate.log)"
elif [ "$cpu_out" = "$gpu_out" ]; then
  note "canopy generate, $gen_name, greedy, 32 tokens: --device cuda == --device cpu"
else
  read -ra a <<<"$cpu_out"
  read -ra b <<<"$gpu_out"
  first=0
  while [ $first -lt ${#a[@]} ] && [ $first -lt ${#b[@]} ] && [ "${a[$first]}" = "${b[$first]}" ]; do first=$((first + 1)); done
  note "canopy generate, $gen_name, greedy: --device cuda differs from --device cpu from token $first (a near-tie? see the model tests above)"
fi
while read -r l; do note "generate --device cuda: $l"; done < <(grep -h "decode" "$logs/generate_cuda.err" |
  sed 's/.*| prompt/prompt/' | tail -1)
# The text form too, when this build has the tokenizer.
if [ -n "${CANOPY_MODEL:-}" ] && timeout "$(cap 60)" "$build/canopy" generate -m "$CANOPY_MODEL" \
    -p "The capital of France is" --temperature 0 --max-tokens 24 --device cuda >"$logs/generate_text.out" \
    2>>"$logs/generate.log"; then
  note "generate -p 'The capital of France is' --device cuda: $(tr '\n' ' ' <"$logs/generate_text.out" | cut -c1-120)"
fi

# 3b. run-batch on the GPU: the example batch (16 questions over one document, 3 few-shot
# completions), greedy, with prefix sharing and with --no-prefix-sharing: the same texts, and the
# summaries' prefill counts and speed.
if [ -n "${CANOPY_MODEL:-}" ]; then
  for mode in sharing no-sharing; do
    flag=(); [ "$mode" = no-sharing ] && flag=(--no-prefix-sharing)
    timeout "$(cap 120)" "$build/canopy" run-batch -m "$CANOPY_MODEL" -i examples/batch-shared-prefix.jsonl \
      -o "$logs/batch_$mode.jsonl" --device cuda "${flag[@]}" >"$logs/batch_$mode.summary" 2>>"$logs/generate.log" ||
      bad "run-batch --device cuda ($mode; generate.log)"
    note "run-batch --device cuda, $mode: $(tail -n 1 "$logs/batch_$mode.summary" | cut -c1-400)"
  done
  texts() {
    python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    choice = (((r.get("response") or {}).get("body") or {}).get("choices") or [{}])[0]
    print(json.dumps(choice.get("text", (choice.get("message") or {}).get("content"))))
PY
  }
  if [ "$(texts "$logs/batch_sharing.jsonl" | md5sum)" = "$(texts "$logs/batch_no-sharing.jsonl" | md5sum)" ]; then
    note "run-batch --device cuda: every output identical with and without prefix sharing"
  else
    note "run-batch --device cuda: outputs differ between sharing and no-sharing (bf16 near-ties?): $(diff <(texts "$logs/batch_sharing.jsonl") <(texts "$logs/batch_no-sharing.jsonl") | grep -c '^<') of $(wc -l <"$logs/batch_sharing.jsonl")"
  fi
fi

# 4. the benchmark: random Llama-3-8B, decode steps op by op vs CUDA graphs
if [ "${CANOPY_SKIP_BENCH:-0}" != 1 ]; then
  CANOPY_GPU_BENCH=1 timeout "$(cap 180)" "$build/tests/test_gpu" --gtest_filter='CudaBench.*' >"$logs/bench.log" 2>&1 ||
    bad "CudaBench (bench.log)"
  while read -r l; do note "$l"; done < <(grep -h "\[ measured \]" "$logs/bench.log")
fi
finish
