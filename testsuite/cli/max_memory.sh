#!/bin/sh
# max_memory.sh — `--max-memory`: a model whose weights, planned activation arena, or both
# together exceed the limit is refused at compile time (-o FILE.so and --jit) with exit 2 and the
# numbers; under the limit (and with the default, the machine's memory) it compiles; bad sizes are
# usage errors. glyphvit: 863728 bytes of weights; its arena grows with the batch.
# usage: max_memory.sh VTOPT SRC_DIR WORK_DIR
set -u
vtopt="$1"; src="$2"; work="$3"
model="$src/testsuite/models/trained/glyphvit.onnx"
rm -rf "$work"; mkdir -p "$work"
fails=0
expect() {   # expect RC PATTERN args...
  want="$1"; pat="$2"; shift 2
  "$vtopt" "$model" -q "$@" >"$work/out.txt" 2>&1
  rc=$?
  if [ "$rc" != "$want" ] || { [ -n "$pat" ] && ! grep -q -- "$pat" "$work/out.txt"; }; then
    echo "FAIL: vtopt $* -> exit $rc (want $want), output:"; cat "$work/out.txt"; fails=$((fails + 1))
  else
    echo "ok: $* -> exit $rc: $(head -c 300 "$work/out.txt")"
  fi
}
expect 2 "refused: its weights exceed the memory limit: weights 863728 bytes" --dim batch=1 -o "$work/a.so" --max-memory 512K
expect 2 "refused: its activation arena exceeds the memory limit: .*limit 2097152 bytes" --dim batch=64 -o "$work/b.so" --max-memory 2M
expect 2 "refused: its weights and activation arena together exceed" --dim batch=2 -o "$work/c.so" --max-memory 900K
expect 2 "refused: its weights exceed" --dim batch=1 --run --jit --random-inputs --max-memory 100K
expect 0 "" --dim batch=64 -o "$work/d.so" --max-memory 64M
expect 0 "" --dim batch=64 -o "$work/e.so"
expect 0 "" --dim batch=1 -o "$work/f.so" --max-memory none
expect 2 "is not a size" --max-memory 12Q
expect 2 "is not a size" --max-memory -5
[ -s "$work/d.so" ] && [ ! -e "$work/a.so" ] || { echo "FAIL: refused compiles must write nothing"; fails=$((fails + 1)); }
[ "$fails" = 0 ] && echo "all ok"
exit "$fails"
