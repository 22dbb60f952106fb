#!/usr/bin/env bash
# Training-step speed of this program and of PyTorch on the CPU, one after the other on the
# same machine, so that their ratio holds whatever the machine: `resnet-wgpu bench --steps`
# for each binary given (default: this checkout's release build), then
# scripts/torch_cpu_step.py with the python given in $PYTHON (default python3; it needs torch
# and torchvision).
#   scripts/bench-vs-pytorch.sh [BINARY ...]
set -euo pipefail
cd "$(dirname "$0")/.."
binaries=("$@")
if [ ${#binaries[@]} -eq 0 ]; then
  cargo build --release --quiet
  binaries=(target/release/resnet-wgpu)
fi
grep -m1 "model name" /proc/cpuinfo || true
for binary in "${binaries[@]}"; do
  echo "== $binary bench --steps"
  "$binary" bench --steps
done
echo "== PyTorch CPU"
"${PYTHON:-python3}" scripts/torch_cpu_step.py
