#!/usr/bin/env bash
# CoolColor's GPU figures in one run (issue 26 §4), with SD-1.5's architecture and random weights
# (preset:sd15: speed and memory do not depend on the values). From the repository root:
#
#     bash bench/gpu.sh               # on a machine with a CUDA GPU (target: under five minutes)
#     bash bench/gpu.sh --cpu-smoke   # the same script at the tiny preset's size on a CPU (CI keeps it working)
#
# Prints, each measured in this run:
#   1. one pipeline call per frame at 512×512, 20 steps, keyframe attention off and on (bench_core.py)
#   2. end-to-end frames/s of a colorize job on a 512×512 EXR plate, 20 steps (bench_video.py fps), and
#      the cost of a 3840×2160 plate against a 512×288 one (bench_video.py resolution)
#   3. the SD-1.5 training step: seconds and peak memory per memory option (bench_train_step.py)
# Environment: PYTHON (default python3), GPU_DTYPE (default fp16), TRAIN_BATCH (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [[ "${1:-}" == "--cpu-smoke" ]]; then
    MODEL=preset:tiny; SIZE=64; STEPS=2; FRAMES=2; DEVICE=cpu; DTYPE=fp32
    TRAIN=(--preset tiny --size 64 --batch 1 --steps 1 --options fp32); RES_FRAMES=1
elif [[ $# -gt 0 ]]; then
    echo "bench/gpu.sh: unknown argument $1 (use no argument on a GPU machine, or --cpu-smoke)" >&2
    exit 2
else
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "bench/gpu.sh: torch sees no CUDA GPU here; run it on a GPU machine, or use --cpu-smoke" >&2
        exit 1
    fi
    MODEL=preset:sd15; SIZE=512; STEPS=20; FRAMES=8; DEVICE=cuda; DTYPE=${GPU_DTYPE:-fp16}
    TRAIN=(--preset sd15 --size 512 --batch "${TRAIN_BATCH:-4}" --steps 3); RES_FRAMES=2
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi
"$PY" -c 'import torch, diffusers; print(f"torch {torch.__version__}, diffusers {diffusers.__version__}")'
start=$SECONDS

echo
echo "== 1. pipeline call, $MODEL, ${SIZE}×${SIZE}, $STEPS steps: keyframe attention off and on"
"$PY" bench/bench_core.py --model "$MODEL" --size "$SIZE" --frames "$FRAMES" --steps "$STEPS" --repeats 1 \
    --device "$DEVICE" --dtype "$DTYPE"

echo
echo "== 2. colorize job end to end, ${SIZE}×${SIZE} EXR plate, $STEPS steps; 4K vs 512 plate"
"$PY" bench/bench_video.py --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --sections fps,resolution \
    --size "$SIZE" --height "$SIZE" --frames $((FRAMES * 2)) --window "$FRAMES" --steps "$STEPS" \
    --res-frames "$RES_FRAMES" --no-sd15-projection

echo
echo "== 3. training step, ${TRAIN[*]}"
"$PY" bench/bench_train_step.py "${TRAIN[@]}" --device "$DEVICE"

echo
echo "bench/gpu.sh: done in $((SECONDS - start)) s"
