#!/usr/bin/env bash
# Installs what vtopt needs on a fresh Debian 12 machine (as root); a no-op when all is there.
set -eu
pkgs="cmake make gcc pkg-config libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
llvm-19-dev clang-19 libclang-rt-19-dev libcmocka-dev python3-onnx python3-numpy python3-torch
libopenblas0-pthread ffmpeg python3-imageio python3-skimage opencv-doc"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js (for the ONNX Runtime peer) may come from another source with npm bundled.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  echo "setup: installing:$missing"
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install:$missing" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
