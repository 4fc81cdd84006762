#!/bin/sh
# pip_install.sh — `pip install ./python` works offline (no index, no build step) into a fresh
# virtual environment that sees Debian's numpy, and the installed package (not the source tree)
# loads and runs a compiled model from another folder.
# usage: pip_install.sh PYTHON SRC_DIR WORK_DIR VTOPT_CLI
set -eu
py="$1"; src="$2"; work="$3"; cli="$4"
rm -rf "$work"; mkdir -p "$work"
"$py" -m venv --system-site-packages "$work/venv"
# pip builds in the folder it is given (build/, *.egg-info): install from a copy, so the source
# tree stays as committed
cp -r "$src/python" "$work/pkgsrc"
rm -rf "$work/pkgsrc/build" "$work/pkgsrc"/*.egg-info
"$work/venv/bin/pip" install --no-index --no-cache-dir -q "$work/pkgsrc"
cd "$work"
VTOPT_CLI="$cli" "$work/venv/bin/python" - "$src" <<'PY'
import os, sys
import numpy as np
import vtopt
src = sys.argv[1]
assert "site-packages" in vtopt.__file__ and not vtopt.__file__.startswith(os.path.join(src, "python")), vtopt.__file__
m = vtopt.compile(os.path.join(src, "testsuite/models/trained/glyphvit.onnx"), passes="tome:r=4",
                  out="pip.so", dims={"batch": 1})
(y,) = m.session(threads=1).run(np.zeros((1, 3, 48, 48), np.float32))
assert y.shape == (1, 10) and np.isfinite(y).all()
print("installed vtopt", vtopt.__version__, "from", vtopt.__file__, "ran", m.tag)
PY
