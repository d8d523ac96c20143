#!/usr/bin/env bash
# Per forest kernel in a CUDA binary (cubin, object or static library): HGMMA instructions, wgmma
# waits that keep one group in flight (WARPGROUP.DEPBAR.LE gsb0, 0x1: the v3 overlap; ptxas turns
# them all into 0x0 waits after every HGMMA when it serializes the wgmmas), all wgmma waits, and
# local-memory traffic (LDL/STL: spills). One line per kernel.
#   bash bench/attention/sass_check.sh build/src/backend/cuda/libcanopy_backend_cuda.a [cuobjdump]
set -uo pipefail
BIN="$1"
CUOBJDUMP="${2:-cuobjdump}"
"$CUOBJDUMP" -sass "$BIN" 2> /dev/null | awk '
  /Function :/ { fn = $3 }
  fn ~ /forest_attention/ && /HGMMA/ { hg[fn]++ }
  fn ~ /forest_attention/ && /WARPGROUP.DEPBAR.LE gsb0, 0x1/ { w1[fn]++ }
  fn ~ /forest_attention/ && /WARPGROUP.DEPBAR/ { w[fn]++ }
  fn ~ /forest_attention/ && /(LDL|STL)/ { l[fn]++ }
  fn ~ /forest_attention/ { seen[fn] = 1 }
  END {
    for (f in seen) {
      name = f
      sub(/^_ZN6canopy7kernels[0-9]+/, "", name)
      sub(/EvNS0_.*$/, "", name)
      sub(/ILi/, " D=", name)
      sub(/ELb0EE/, " (v2)", name)
      sub(/ELb1EE/, " (v3)", name)
      sub(/EE$/, "", name)
      printf "  %-48s HGMMA %3d  wgmma waits %3d (keep-one %2d)  LDL/STL %d\n", name, hg[f], w[f], w1[f], l[f]
    }
  }' | sort
