#!/usr/bin/env bash
# Installs the ONNX Runtime peer (npm onnxruntime-node, CPU library bundled) into bench/node_modules.
# Idempotent and offline-safe: does nothing when the pinned version already loads.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if node -e "import('onnxruntime-node').then(()=>process.exit(0),()=>process.exit(1))" 2>/dev/null; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "bench/setup.sh: npm not found (scripts/setup.sh installs it)" >&2; exit 1; }
echo "bench/setup.sh: installing onnxruntime-node into $here/node_modules"
# The postinstall script would download GPU libraries; the CPU library ships in the package.
if [ -f package-lock.json ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
else
  ONNXRUNTIME_NODE_INSTALL=skip npm install --ignore-scripts --no-audit --no-fund --loglevel=error
fi
node -e "import('onnxruntime-node').then(()=>process.exit(0),e=>{console.error(e.message);process.exit(1)})"
