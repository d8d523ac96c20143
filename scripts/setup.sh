#!/usr/bin/env bash
# Installs everything canopy needs (Debian packages), then configures and builds it.
# Idempotent: packages already present are not reinstalled; the build is incremental.
#   bash scripts/setup.sh            # install + build into ./build
#   bash scripts/setup.sh --no-build # install only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip unzip
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libpcre2-dev libutf8proc-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev libomp-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--no-build" ] && exit 0

jobs=$(nproc)
generator=(-G Ninja)
[ -f build/CMakeCache.txt ] && generator=()  # keep the generator an existing build folder was made with
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCANOPY_WERROR=ON ${CANOPY_CMAKE_ARGS:-}
cmake --build build -j "$jobs"
echo "setup: built ./build/canopy"
