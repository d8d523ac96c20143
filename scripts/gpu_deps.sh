#!/usr/bin/env bash
# Prepares, on a Debian 12 machine with network, the libraries canopy's build needs for a GPU
# machine that has CUDA, CMake, ninja and a compiler but neither these libraries nor network:
# downloads the Debian packages and unpacks them into .carry/gpu-deps/root (.carry/ is ignored by
# git). scripts/gpu_check.sh uses that folder when it is there: carry .carry/gpu-deps to the GPU
# machine with the checkout (about 20 MB).
#   bash scripts/gpu_deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libutf8proc-dev libutf8proc2
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 libbrotli-dev libbrotli1 zlib1g-dev
  libgtest-dev libgmock-dev pkgconf pkgconf-bin libpkgconf3
)
dest=.carry/gpu-deps
rm -rf "$dest"
mkdir -p "$dest/debs"
(cd "$dest/debs" && apt-get download "${packages[@]}" >/dev/null 2>&1)
for deb in "$dest"/debs/*.deb; do dpkg-deb -x "$deb" "$dest/root"; done
# Shared libraries are enough, except GoogleTest's, which only come static.
find "$dest/root" -name '*.a' ! -name 'libgtest*' ! -name 'libgmock*' -delete
rm -rf "$dest/debs" "$dest/root/usr/share/doc" "$dest/root/usr/share/man"
echo "gpu_deps: $(du -sh "$dest" | cut -f1) in $dest/root"
