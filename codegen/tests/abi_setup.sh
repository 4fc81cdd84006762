#!/bin/sh
# abi_setup.sh — fixture of the ABI tests (codegen/CMakeLists.txt): makes two different tiny zoo
# models (torch export + input + torch reference), compiles each with `vtopt -o X.so --tag T`, and
# builds test_so_abi.c linked against both libraries at link time (the dlopen variant is built by
# CMake). Run by ctest before test_so_abi_dlopen / test_so_abi_linked.
# usage: abi_setup.sh VTOPT SRC_DIR OUT_DIR CC "SANITIZER_FLAGS"
set -eu
vtopt="$1"; src="$2"; out="$3"; cc="$4"; san="${5:-}"
mkdir -p "$out"
/usr/bin/python3 "$src/testsuite/models/gen_zoo.py" --only vit_tiny_op17,vit_tiny_qkv_op16 --out "$out" >/dev/null
"$vtopt" "$out/vit_tiny_op17.onnx" --dim batch=2 -q -o "$out/abi_a.so" --tag abi_a
"$vtopt" "$out/vit_tiny_qkv_op16.onnx" --dim batch=2 -q -o "$out/abi_b.so" --tag abi_b
# link time: both libraries on the command line, found at run time through the rpath
# shellcheck disable=SC2086
"$cc" -std=c11 -O1 -g -Wall -Wextra -Werror $san -DTAG_A=abi_a -DTAG_B=abi_b -I"$src/include" \
  "$src/codegen/tests/test_so_abi.c" -o "$out/test_so_abi_linked" "$out/abi_a.so" "$out/abi_b.so" \
  -Wl,-rpath,"$out" -lm
echo "abi_setup: $out/abi_a.so $out/abi_b.so $out/test_so_abi_linked"
