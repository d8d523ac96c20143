#!/usr/bin/env bash
# The attention work's GPU session, in one device call (H100, CUDA 13, ~8 minutes, every step
# capped so that the table always prints last):
#   1. configure + build test_gpu and bench_attention (16 cores, sm_90a);
#   2. the GPU kernel tests (ctest -L gpu);
#   3. compute-sanitizer memcheck and racecheck on the small kernel tests;
#   4. the decode attention benchmark: canopy (fused, unfused, sharing off), PyTorch's kernels
#      (own copy; Hydragen split + merge), FlashInfer's cascade wrapper if its wheel was carried;
#   5. the markdown table.
#
# Device call, from the repository root:   bash bench/attention/gpu_session.sh
#   carry: [".whl", ".carry"]   (optional; made by bench/attention/fetch_carry.sh)
# Results land in $OUT: gpu.txt, *.log, canopy.json, torch.json, flashinfer.json,
# attention-results.json (commit it as bench/results/attention-<gpu>-<date>.json).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT="${OUT:-/tmp/canopy-gpu-out}"
mkdir -p "$OUT"
START=$SECONDS
BUDGET=${BUDGET:-570}  # seconds; a device call may run 600
BUILD="${BUILD:-build-gpu}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
step() { echo "== [$((SECONDS - START))s] $*"; }
left() { echo $((BUDGET - (SECONDS - START))); }
cap() { local want=$1 floor=${2:-10}; local l; l=$(left); l=$((l - 30)); ((l < floor)) && l=$floor; ((want < l)) && echo "$want" || echo "$l"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv \
  2>&1 | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tee -a "$OUT/gpu.txt"
nproc | sed 's/^/cores: /' | tee -a "$OUT/gpu.txt"

# ---- FlashInfer: install the carried wheels privately; build its kernels in the background (JIT)
FI_SITE=/tmp/canopy-flashinfer
FI_PID=""
if ls .whl/flashinfer*.whl > /dev/null 2>&1; then
  rm -rf "$FI_SITE"
  if python3 -m pip install --quiet --no-index --no-deps --target "$FI_SITE" .whl/*.whl > "$OUT/flashinfer-install.log" 2>&1; then
    (PYTHONPATH="$FI_SITE" timeout 300 nice -n 5 python3 bench/attention/peers.py --warmup-flashinfer \
       > "$OUT/flashinfer-warmup.log" 2>&1; echo "exit $?" >> "$OUT/flashinfer-warmup.log") &
    FI_PID=$!
    step "flashinfer: installed, kernels building in the background"
  else
    step "flashinfer: wheel install failed (see flashinfer-install.log)"
  fi
else
  step "flashinfer: no wheel carried (.whl/), column skipped"
fi

# ---- 1. build
step "configure"
cmake_args=(-S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCANOPY_CUDA=ON -DCANOPY_CUDA_ARCHS=90a
            -DCANOPY_WERROR=OFF -DCANOPY_BENCH=ON)
if ! cmake "${cmake_args[@]}" > "$OUT/cmake.log" 2>&1; then
  if ls .carry/debs/*.deb > /dev/null 2>&1; then
    step "configure failed; unpacking the carried dev packages (.carry/debs) and retrying"
    SYSROOT=/tmp/canopy-sysroot
    rm -rf "$SYSROOT" "$BUILD"
    mkdir -p "$SYSROOT"
    for d in .carry/debs/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
    find "$SYSROOT" -name '*.pc' -exec sed -i "s#^prefix=/usr#prefix=$SYSROOT/usr#" {} +
    export CMAKE_PREFIX_PATH="$SYSROOT/usr"
    export PKG_CONFIG_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig:${PKG_CONFIG_PATH:-}"
    export LD_LIBRARY_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
    command -v pkg-config > /dev/null || export PATH="$PATH:$SYSROOT/usr/bin"
    export CPATH="$SYSROOT/usr/include:${CPATH:-}"
    export LIBRARY_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu:${LIBRARY_PATH:-}"
    cmake "${cmake_args[@]}" > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; step "configure failed"; exit 1; }
  else
    tail -30 "$OUT/cmake.log"
    step "configure failed (no .carry/debs to fall back on: bench/attention/fetch_carry.sh)"
    exit 1
  fi
fi
step "build test_gpu bench_attention"
if ! timeout "$(cap 300)" cmake --build "$BUILD" -j "$(nproc)" --target test_gpu bench_attention > "$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -30
  step "build failed (build.log)"
  exit 1
fi
grep -A2 "forest_attention_kernel" "$OUT/build.log" | grep -E "registers|spill" | head -4

# ---- 2. GPU tests
step "GPU kernel tests: ctest -L gpu"
timeout "$(cap 180)" ctest --test-dir "$BUILD" -L gpu -j 4 --timeout 170 --output-on-failure -O "$OUT/ctest.log" \
  > "$OUT/ctest-console.log" 2>&1
grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\(SEGFAULT\)|Exception" "$OUT/ctest-console.log" | head -40

# ---- 3. compute-sanitizer on the small kernel tests
SAN="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ -x "$SAN" ] && (( $(left) > 300 )); then
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool"
    timeout "$(cap 90)" "$SAN" --tool "$tool" --error-exitcode 3 "$BUILD/tests/test_gpu" \
      --gtest_filter='ForestAttentionSanitize.*' > "$OUT/sanitizer-$tool.log" 2>&1
    echo "$tool exit code $? (0: clean, 3: errors found, 124: timed out)"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race|hazard" "$OUT/sanitizer-$tool.log" | sort | uniq -c | head -8
  done
else
  step "compute-sanitizer skipped (not found or short of time)"
fi

# ---- 4. benchmark
if [ -n "$FI_PID" ]; then
  step "waiting for the FlashInfer build"
  w=$(cap 60 5)
  for ((i = 0; i < w; i++)); do kill -0 "$FI_PID" 2> /dev/null || break; sleep 1; done
  if kill -0 "$FI_PID" 2> /dev/null; then
    pkill -P "$FI_PID" 2> /dev/null; kill "$FI_PID" 2> /dev/null
    echo "flashinfer: kernels not built in time, column skipped"; FI_PID=""
  else
    tail -3 "$OUT/flashinfer-warmup.log"
    grep -q "exit 0" "$OUT/flashinfer-warmup.log" || FI_PID=""
  fi
fi
step "canopy benchmark"
timeout "$(cap 150)" "$BUILD/bench/attention/bench_attention" --out "$OUT/canopy.json" --repeats 30 2>&1 | tee "$OUT/canopy.txt"
step "PyTorch peers"
timeout "$(cap 150)" python3 bench/attention/peers.py --shapes "$OUT/canopy.json" --out "$OUT/torch.json" --repeats 30 \
  > "$OUT/torch.txt" 2>&1
tail -3 "$OUT/torch.txt"
if [ -n "$FI_PID" ] && (( $(left) > 60 )); then
  step "FlashInfer peer"
  PYTHONPATH="$FI_SITE" timeout "$(cap 90)" python3 bench/attention/peers.py --flashinfer --shapes "$OUT/canopy.json" \
    --out "$OUT/flashinfer.json" --repeats 30 > "$OUT/flashinfer.txt" 2>&1
  tail -3 "$OUT/flashinfer.txt"
fi

# ---- 5. table
step "report"
python3 bench/attention/report.py --canopy "$OUT/canopy.json" --torch "$OUT/torch.json" \
  --flashinfer "$OUT/flashinfer.json" --out "$OUT/attention-results.json"
