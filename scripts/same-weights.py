#!/usr/bin/env python3
"""Compares the tensors of two checkpoints (safetensors files) bit for bit.

Usage: scripts/same-weights.py A.safetensors B.safetensors

Prints how many tensors are identical and names the first that differ; exits 1 if any tensor
is missing from one file or differs in dtype, shape or bytes. Used to show that two builds train
bit-identically on the same kernels (scripts/same-step.sh).
"""
import json
import struct
import sys


def tensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file: an 8-byte little-endian header
    length, the JSON header, then the data the header's offsets point into."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len])
    data = blob[8 + header_len :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        out[name] = (entry["dtype"], tuple(entry["shape"]), data[start:end])
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = (tensors(p) for p in sys.argv[1:])
    if not a or not b:
        sys.exit("a checkpoint holds no tensors")
    differ = [n for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
    same = len(set(a) & set(b)) - len([n for n in differ if n in a and n in b])
    print(f"{same} of {len(set(a) | set(b))} tensors bit-identical")
    for name in differ[:5]:
        print(f"  differs: {name}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
