#!/bin/sh
# install_test.sh — `cmake --install BUILD --prefix P`, then, using only P:
#  1. a C program (use_vtopt.c) built through pkg-config (vtopt.pc) compiles a model with the
#     installed compiler library and runs the fast.so through <vtopt/model.h>;
#  2. the same program built by a CMake project through find_package(vtopt) (a copy of P elsewhere:
#     the installed files hold no absolute paths);
#  3. the installed CLI compiles a fast.so linking the installed libraries (proved by breaking
#     the copy's libvt_ir.a: the link must then fail naming it) and the installed Python package
#     finds that CLI by itself;
#  4. `cpack -G DEB` packs the same tree under /usr.
# usage: install_test.sh BUILD_DIR SRC_DIR WORK_DIR CC
set -eu
build="$1"; src="$2"; work="$3"; cc="$4"
model="$src/testsuite/models/trained/glyphvit.onnx"
rm -rf "$work"; mkdir -p "$work"
P="$work/prefix"
cmake --install "$build" --prefix "$P" >"$work/install.log"
for f in bin/vtopt include/vtopt/model.h include/vtopt/ir.h include/vtopt/ops.def lib/pkgconfig/vtopt.pc \
         lib/pkgconfig/vtopt-model.pc lib/cmake/vtopt/vtoptConfig.cmake lib/vtopt/libvt_codegen.a \
         lib/python3/dist-packages/vtopt/__init__.py lib/python3/dist-packages/vtopt/_install_paths.py; do
  test -e "$P/$f" || { echo "install_test: $P/$f was not installed"; exit 1; }
done
if grep -rl "$src\|$build" "$P/lib/pkgconfig" "$P/lib/cmake" "$P/lib/python3" >/dev/null 2>&1; then
  echo "install_test: installed files name the source or build tree:"; grep -rl "$src\|$build" "$P/lib"; exit 1
fi

# 1. pkg-config
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
# shellcheck disable=SC2046
"$cc" -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -Werror "$src/testsuite/install/use_vtopt.c" -o "$work/use_vtopt_pc" \
  $(pkg-config --cflags --libs vtopt)
"$work/use_vtopt_pc" "$model" "tome:r=4" "$work/pc.so"

# 2. find_package from a moved copy of the prefix
cp -a "$P" "$work/moved"
cmake -S "$src/testsuite/install" -B "$work/cmake_consumer" -DCMAKE_PREFIX_PATH="$work/moved" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release >"$work/consumer.log"
cmake --build "$work/cmake_consumer" >>"$work/consumer.log"
"$work/cmake_consumer/use_vtopt" "$model" "tome:r=2" "$work/cm.so"

# 3. the installed CLI links with the installed libraries; the installed Python finds the CLI
"$work/moved/bin/vtopt" "$model" --dim batch=1 -q -o "$work/cli.so" --pass=tome:r=4
test -s "$work/cli.so"
cd "$work"
PYTHONPATH="$work/moved/lib/python3/dist-packages" /usr/bin/python3 -c "
import vtopt, numpy as np
assert vtopt.__file__.startswith('$work/moved/'), vtopt.__file__
assert vtopt.find_cli() == '$work/moved/bin/vtopt', vtopt.find_cli()
m = vtopt.load('$work/cli.so')
(y,) = m.session(threads=1).run(np.zeros((1, 3, 48, 48), np.float32))
assert y.shape == (1, 10)
print('installed python package: CLI', vtopt.find_cli(), 'ran', m.tag)
"
echo "broken" >"$work/moved/lib/vtopt/libvt_ir.a"
if "$work/moved/bin/vtopt" "$model" --dim batch=1 -q -o "$work/cli2.so" 2>"$work/cli2.err"; then
  echo "install_test: the installed vtopt did not link with its installed libraries"; exit 1
fi
grep -q "moved/.*lib/vtopt/libvt_ir.a" "$work/cli2.err" || { echo "install_test: unexpected link error:"; cat "$work/cli2.err"; exit 1; }
# 4. the .deb (CPack) holds the same tree under /usr
if command -v cpack >/dev/null && command -v dpkg-deb >/dev/null; then
  (cd "$build" && cpack -G DEB -B "$work/deb" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
  dpkg-deb -c "$work"/deb/vtopt_*.deb >"$work/deb.list"
  for f in ./usr/bin/vtopt ./usr/include/vtopt/model.h ./usr/lib/pkgconfig/vtopt.pc ./usr/lib/vtopt/libvt_ir.a \
           ./usr/lib/python3/dist-packages/vtopt/model.py; do
    grep -q " $f\$" "$work/deb.list" || { echo "install_test: $f missing from the .deb"; exit 1; }
  done
fi
echo "install_test: ok ($P)"
