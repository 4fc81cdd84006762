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
# --stats: both libraries are all generated code (no interpreter kernel inside), or the fixture fails
"$vtopt" "$out/vit_tiny_op17.onnx" --dim batch=2 -q --stats -o "$out/abi_a.so" --tag abi_a > "$out/abi_a.stats"
/usr/bin/python3 "$src/testsuite/models/check_stats.py" "$out/abi_a.stats" --what abi_a.so --min-share 1.0
"$vtopt" "$out/vit_tiny_qkv_op16.onnx" --dim batch=2 -q --stats -o "$out/abi_b.so" --tag abi_b > "$out/abi_b.stats"
/usr/bin/python3 "$src/testsuite/models/check_stats.py" "$out/abi_b.stats" --what abi_b.so --min-share 1.0
# link time: both libraries on the command line, found at run time through the rpath
# shellcheck disable=SC2086
"$cc" -std=c11 -O1 -g -Wall -Wextra -Werror $san -DTAG_A=abi_a -DTAG_B=abi_b -I"$src/include" \
  "$src/codegen/tests/test_so_abi.c" -o "$out/test_so_abi_linked" "$out/abi_a.so" "$out/abi_b.so" \
  -Wl,-rpath,"$out" -lm
echo "abi_setup: $out/abi_a.so $out/abi_b.so $out/test_so_abi_linked"
