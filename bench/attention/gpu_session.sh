#!/usr/bin/env bash
# The attention work's GPU session, in one device call (H100, CUDA 13, every step capped so that
# the table always prints last):
#   1. configure + build test_gpu and bench_attention (16 cores, sm_90a);
#   2. the one-tile wgmma layout test (printed), then the GPU attention tests (both kernels; the
#      CPU-only emulated tests and the model backend's tests -- scripts/gpu_check.sh -- skipped);
#   3. compute-sanitizer memcheck and racecheck on the small kernel tests (both kernels);
#   4. the decode attention benchmark: canopy v1 (mma.sync) and the wgmma kernel's v2 and v3
#      variants side by side in a second process (a wgmma failure cannot lose the v1 numbers; if
#      that process fails, a v2-only run follows so that v2 is still measured), sharing off; with
#      --peers also PyTorch's kernels (own copy; Hydragen split + merge) and FlashInfer's cascade
#      wrapper;
#   5. at the very end a compact summary (only the output's tail comes back): ptxas/SASS facts of
#      the kernels, the GPU test counts and failures, the sanitizer summaries, then the tables.
#
# Device call, from the repository root:
#   bash bench/attention/gpu_session.sh [--peers] [--no-sanitizer] [--no-flat] [--only SHAPE]
#                                       [--v2-variants LIST] [--repeats N]
#   carry: [".whl", ".carry"]   (.whl only matters with --peers; made by bench/attention/fetch_carry.sh)
# About 3 minutes without --peers (which adds the FlashInfer JIT build: minutes).
# Results land in $OUT: gpu.txt, *.log, canopy-v1.json, canopy-v2.json, torch.json,
# flashinfer.json, attention-results.json (commit it as bench/results/attention-<gpu>-<date>.json).
set -uo pipefail
cd "$(dirname "$0")/../.."
PEERS=0
SANITIZER=1
FLAT=1
ONLY=""
REPEATS=30
V1_VARIANTS="v1u,v1"
# auto (what the engine runs) is the reference output. v2 and v3 share the leaf code (v3-leaves
# measures both).
# v3-leaves-sm66: the leaves on half the SMs (their per-SM streaming rate below the DRAM limit:
# what a leaf CTA gives while tensor CTAs compute).
# -pf: v3 with the leaf prefetch into L2 (off by default: it cost 2-9%); -wp1/-wp2: shared nodes in 1 or 2
# pieces per tensor CTA instead of 4 (fewer unit boundaries and partials vs a longer tail).
# warmup: the engine's choice, timed and discarded: the first variant of a shape measured up to 12%
# slower than the same launch measured later (fresh buffers), so "auto" (canopy) is not first.
V2_VARIANTS="warmup,auto,v1u,v2u,v2,v2-prefix,v3u,v3,v3-pf,v3-wp1,v3-wp2,v3-prefix,v3-leaves,v3-leaves-pf,v3-leaves-sm66"
V2_VARIANTS+=",v3-tc66,v3-tc99,v3-tc132"
V2_FALLBACK="warmup,auto,v1u,v2u,v2,v2-prefix,v2-leaves,v2-tc99,v2-tc132"
EXTRA_CANOPY=()
while (($#)); do
  case "$1" in
    --peers) PEERS=1 ;;
    --no-sanitizer) SANITIZER=0 ;;
    --no-flat) FLAT=0 ;;
    --only) ONLY="$2"; shift ;;
    --repeats) REPEATS="$2"; shift ;;
    --v1-variants) V1_VARIANTS="$2"; shift ;;
    --v2-variants) V2_VARIANTS="$2"; shift ;;
    *) echo "gpu_session.sh: unknown argument $1"; exit 2 ;;
  esac
  shift
done
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
if ((PEERS == 0)); then
  step "peers skipped (no --peers)"
elif ls .whl/flashinfer*.whl > /dev/null 2>&1; then
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
# Registers, stack (spills) and shared memory of the attention kernels, from the built library;
# HGMMA / wgmma waits / LDL-STL per kernel (bench/attention/sass_check.sh).
LIB="$BUILD/src/backend/cuda/libcanopy_backend_cuda.a"
cuobjdump -res-usage "$LIB" 2> /dev/null | grep -A1 "forest_attention" | grep -E "Function|REG" | sed 's/^ *//' | \
  head -16 > "$OUT/resources.txt"
bash bench/attention/sass_check.sh "$LIB" > "$OUT/sass.txt" 2>&1
cat "$OUT/resources.txt" "$OUT/sass.txt"

# ---- 2. GPU tests: the wgmma layouts first (a failure there explains any v2 failure below)
step "wgmma layout test"
timeout "$(cap 60)" "$BUILD/tests/test_gpu" --gtest_filter='WgmmaLayout.TileProductsOnTheGpu' 2>&1 | \
  grep -E "wgmma tile|OK|FAILED|SKIPPED|Failure|expected" | head -20 | tee "$OUT/layout.txt"
step "GPU attention tests: ctest -L gpu -R 'Forest|Wgmma' (emulated CPU-only tests excluded)"
timeout "$(cap 180)" ctest --test-dir "$BUILD" -L gpu -R "Forest|Wgmma" -E "Emulated" -j 4 --timeout 120 --output-on-failure \
  -O "$OUT/ctest.log" > "$OUT/ctest-console.log" 2>&1
grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\(SEGFAULT\)|Exception" "$OUT/ctest-console.log" | head -40

# ---- 3. compute-sanitizer on the small kernel tests
SAN="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if ((SANITIZER == 0)); then
  step "compute-sanitizer skipped (--no-sanitizer)"
elif [ -x "$SAN" ] && (( $(left) > 300 )); then
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
BENCH=("$BUILD/bench/attention/bench_attention" --repeats "$REPEATS")
[ -n "$ONLY" ] && BENCH+=(--only "$ONLY")
step "canopy benchmark: v1 ($V1_VARIANTS)"
timeout "$(cap 120)" "${BENCH[@]}" --variants "$V1_VARIANTS" --no-flat --out "$OUT/canopy-v1.json" > \
  "$OUT/canopy-v1.txt" 2>&1
V1_RC=$?
grep -v "^    " "$OUT/canopy-v1.txt"
step "canopy benchmark: wgmma kernel v2 and v3 ($V2_VARIANTS)"
flat_arg=(--no-flat)
((FLAT)) && flat_arg=()
timeout "$(cap 180)" "${BENCH[@]}" --variants "$V2_VARIANTS" "${flat_arg[@]}" --out "$OUT/canopy-v2.json" > \
  "$OUT/canopy-v2.txt" 2>&1
BENCH_RC=$?
grep -v "^    \|^ *CTA timeline" "$OUT/canopy-v2.txt"
echo "wgmma benchmark exit code $BENCH_RC"
if ((BENCH_RC != 0 && BENCH_RC != 124)); then
  tail -5 "$OUT/canopy-v2.txt"
  step "the v2+v3 run failed: v2 alone ($V2_FALLBACK)"
  mv "$OUT/canopy-v2.json" "$OUT/canopy-v3-failed.json" 2> /dev/null
  timeout "$(cap 120)" "${BENCH[@]}" --variants "$V2_FALLBACK" --no-flat --out "$OUT/canopy-v2.json" > \
    "$OUT/canopy-v2-fallback.txt" 2>&1
  echo "v2-only benchmark exit code $?"
  # Keep what the failed run measured before it stopped (its JSON is rewritten after every shape).
  [ -f "$OUT/canopy-v3-failed.json" ] && EXTRA_CANOPY=(--canopy "$OUT/canopy-v3-failed.json")
fi
if ((PEERS)); then
  step "PyTorch peers"
  timeout "$(cap 150)" python3 bench/attention/peers.py --shapes "$OUT/canopy-v2.json" --out "$OUT/torch.json" \
    --repeats 30 > "$OUT/torch.txt" 2>&1
  tail -3 "$OUT/torch.txt"
fi
if [ -n "$FI_PID" ] && (( $(left) > 60 )); then
  step "FlashInfer peer"
  PYTHONPATH="$FI_SITE" timeout "$(cap 90)" python3 bench/attention/peers.py --flashinfer --shapes "$OUT/canopy-v2.json" \
    --out "$OUT/flashinfer.json" --repeats 30 > "$OUT/flashinfer.txt" 2>&1
  tail -3 "$OUT/flashinfer.txt"
fi

# ---- 5. table
step "report"
python3 bench/attention/report.py --canopy "$OUT/canopy-v2.json" "${EXTRA_CANOPY[@]}" --canopy "$OUT/canopy-v1.json" \
  --torch "$OUT/torch.json" --flashinfer "$OUT/flashinfer.json" \
  --previous bench/results/attention-nvidia-h100-80gb-hbm3-2026-11-25-v1.json --out "$OUT/attention-results.json" \
  > "$OUT/tables.md" 2>&1

# ---- 6. the summary: the only part sure to come back (the output's last ~12,000 characters)
echo
echo "==================== SUMMARY (attention session, $(date -u +%H:%M) UTC, $((SECONDS - START)) s) ===================="
echo "-- kernels (cuobjdump -res-usage; SASS: HGMMA count, wgmma waits, keep-one waits = v3 overlap, LDL/STL = spills)"
paste -d' ' - - < "$OUT/resources.txt" | sed -E 's/Function _ZN6canopy7kernels[0-9]+//; s/EvNS0_[^ ]*//; s/ILi/ D=/;
  s/ELb0EE/ (v2)/; s/ELb1EE/ (v3)/; s/EE / /; s/ (TEXTURE|SURFACE|SAMPLER):[0-9]+//g; s/^/  /' | head -8
cat "$OUT/sass.txt"
echo "-- wgmma layout test (one tile on the GPU vs host products; all errors must be 0)"
sed 's/^/  /' "$OUT/layout.txt" 2> /dev/null | head -6
echo "-- GPU attention tests (ctest -L gpu -R 'Forest|Wgmma'; every test runs v1, v2 and v3)"
grep -E "tests passed|tests failed" "$OUT/ctest-console.log" 2> /dev/null | sed 's/^/  /'
grep -E "\(Failed\)|\(Timeout\)|\(SEGFAULT\)|\(Subprocess aborted\)" "$OUT/ctest-console.log" 2> /dev/null | head -10 | sed 's/^/  /'
grep -E "^\[  FAILED  \]|Failure$|kernel emulator|launch error|illegal" "$OUT/ctest.log" 2> /dev/null | sort | uniq -c | head -10
echo "-- compute-sanitizer (ForestAttentionSanitize.*, all three kernels)"
for tool in memcheck racecheck; do
  if [ -f "$OUT/sanitizer-$tool.log" ]; then
    echo "  $tool: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.log" | sort | uniq -c | tr -s ' ' | head -3 | tr '\n' ';')"
  else
    echo "  $tool: not run"
  fi
done
echo "-- benchmark exit codes: v1 ${V1_RC:-?}, v2+v3 ${BENCH_RC:-?} (0 ok, 124 timed out)"
cat "$OUT/tables.md"
