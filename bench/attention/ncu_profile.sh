#!/usr/bin/env bash
# Source-level Nsight Compute profiles of the sm_90a forest kernel, in one device call: builds
# bench_attention only, then per (shape, variant) pair one profiled launch (--set full, SASS with
# per-instruction stall samples) exported as CSV under $OUT (the .ncu-rep stays on the machine),
# and the leaves' streaming rate on 33/66/99/132 SMs (timed, not profiled).
#   bash bench/attention/ncu_profile.sh ["SHAPE|VARIANT" ...]
#   carry: [".carry"]
# Default pairs: the shared nodes alone at 32/8 B=1024 P=16384 and the leaves alone on 66 SMs at
# 40/40 B=1024 P=4096.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/canopy-ncu-out}"
mkdir -p "$OUT"
BUILD="${BUILD:-build-gpu}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
START=$SECONDS
step() { echo "== [$((SECONDS - START))s] $*"; }
PAIRS=("$@")
((${#PAIRS[@]})) || PAIRS=("32/8 B=1024 P=16384|v3-prefix" "40/40 B=1024 P=4096|v3-leaves-sm66")

step "configure + build bench_attention"
cmake_args=(-S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCANOPY_CUDA=ON -DCANOPY_CUDA_ARCHS=90a
            -DCANOPY_WERROR=OFF -DCANOPY_BENCH=ON -DCMAKE_CUDA_FLAGS=-lineinfo)
if ! cmake "${cmake_args[@]}" > /tmp/ncu-cmake.log 2>&1; then
  SYSROOT=/tmp/canopy-sysroot
  rm -rf "$SYSROOT" "$BUILD"; mkdir -p "$SYSROOT"
  for d in .carry/debs/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
  find "$SYSROOT" -name '*.pc' -exec sed -i "s#^prefix=/usr#prefix=$SYSROOT/usr#" {} +
  export CMAKE_PREFIX_PATH="$SYSROOT/usr"
  export PKG_CONFIG_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig"
  export CPATH="$SYSROOT/usr/include" LIBRARY_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu"
  export LD_LIBRARY_PATH="$SYSROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  cmake "${cmake_args[@]}" > /tmp/ncu-cmake.log 2>&1 || { tail -20 /tmp/ncu-cmake.log; exit 1; }
fi
cmake --build "$BUILD" -j "$(nproc)" --target bench_attention > /tmp/ncu-build.log 2>&1 || {
  grep -E "error" /tmp/ncu-build.log | head -20; exit 1; }
B="$BUILD/bench/attention/bench_attention"

step "leaves alone on 33/66/99/132 SMs (streaming rate per SM)"
"$B" --repeats 10 --no-flat --only "B=1024 P=4096" --variants warmup,v3-leaves-sm33,v3-leaves-sm66,v3-leaves-sm99,v3-leaves \
  --out /tmp/leaves.json 2>&1 | tee "$OUT/leaves-rate.txt"

i=0
for pair in "${PAIRS[@]}"; do
  shape="${pair%%|*}"; variant="${pair##*|}"; i=$((i + 1))
  step "ncu: $shape, $variant"
  timeout 200 ncu --clock-control none -k regex:forest_attention_sm90 -s 3 -c 1 --set full --import-source yes \
    -f -o "/tmp/prof$i" "$B" --repeats 3 --no-flat --only "$shape" --variants "$variant" --out /tmp/p.json \
    > "$OUT/ncu$i.log" 2>&1
  tail -3 "$OUT/ncu$i.log"
  ncu -i "/tmp/prof$i.ncu-rep" --page details --csv > "/tmp/details$i.csv" 2>&1
  ncu -i "/tmp/prof$i.ncu-rep" --page source --csv --print-source sass > "/tmp/sass$i.csv" 2>&1
  gzip -c "/tmp/details$i.csv" > "$OUT/details$i.csv.gz"
  gzip -c "/tmp/sass$i.csv" > "$OUT/sass$i.csv.gz"
  ls -la "$OUT" | tail -4
done
step "done"
