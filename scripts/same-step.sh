#!/usr/bin/env bash
# Whether two builds train bit-identically on the same kernels: each binary trains the same
# few steps of the same run (sample data, fixed seed, kernels forced with --kernels), then the
# checkpoints' tensors are compared bit for bit (scripts/same-weights.py).
#   scripts/same-step.sh BINARY_A BINARY_B [KERNELS]   (KERNELS: subgroup by default)
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,5p "$0"; exit 2; }
binaries=("$(realpath "$1")" "$(realpath "$2")")
kernels=${3:-subgroup}
cd "$(dirname "$0")/.."
# A variant that does not apply runs the default instead: refuse to compare what did not run.
if [[ "$kernels" == subgroup* ]] && ! "${binaries[0]}" info | grep -q "subgroups true"; then
  echo "this adapter has no subgroups: --kernels $kernels would not run" >&2
  exit 2
fi
out=$(mktemp -d)
for side in a b; do
  binary=${binaries[0]}; [ $side = b ] && binary=${binaries[1]}
  RESNET_WGPU_CACHE_DIR="$out/cache-$side" "$binary" train --sample --variant resnet18 --stem cifar \
    --widths 16,32,64 --blocks 1,1,1 --batch 32 --micro-batch 16 --max-steps 3 --validation 64 \
    --kernels "$kernels" --checkpoint-dir "$out/$side" >/dev/null
done
python3 scripts/same-weights.py "$out/a/last.safetensors" "$out/b/last.safetensors"
