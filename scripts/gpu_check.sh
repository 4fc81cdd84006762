#!/bin/sh
# gpu_check.sh DIR — the GPU path's check on a GPU machine (issue 16), in the tree that
# scripts/gpu_prepare.sh made (see there; DIR is carried to the machine): the carried CUDA fast.so
# files against the CPU's outputs, then GEMM / attention against PyTorch. Needs the NVIDIA driver
# (libcuda.so.1), python3 with numpy and torch; no LLVM, no CUDA toolkit.
set -u
D=${1:-.}
nvidia-smi -L 2>/dev/null || echo "note: nvidia-smi not found"
uname -m; nproc
exec "${PYTHON:-python3}" "$D/gpu_check.py" "$D"
