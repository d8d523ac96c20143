#!/usr/bin/env bash
# Prepares what gpu_session.sh may need on the GPU machine, which can download nothing:
#   .whl/        FlashInfer (the peer column) and its one dependency missing from the image
#                (apache-tvm-ffi), for CPython 3.12, about 10 MB;
#   .carry/debs/ the Debian dev packages canopy's build needs (fmt, GoogleTest, nlohmann-json,
#                CLI11, PCRE2, utf8proc, cpp-httplib and its .pc dependencies, pkg-config),
#                about 6 MB;
#                gpu_session.sh unpacks them only if configuring fails without them.
# Both folders are git-ignored; pass them to the device call with carry: [".whl", ".carry"].
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-python3}"
mkdir -p .whl .carry/debs
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d .whl flashinfer-python==0.5.3 'apache-tvm-ffi>=0.1,<0.2'
(cd .carry/debs && apt-get download libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libpcre2-dev \
  libutf8proc-dev libutf8proc2 libcpp-httplib-dev libcpp-httplib0.11 libssl-dev zlib1g-dev libbrotli-dev \
  libgtest-dev libgmock-dev pkgconf pkgconf-bin libpkgconf3 libpcre2-8-0 libbrotli1 2>/dev/null)
du -sh .whl .carry
