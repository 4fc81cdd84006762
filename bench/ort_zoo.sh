#!/usr/bin/env bash
# Prints a markdown table of ONNX Runtime latency (median of N runs after warm-up, intra-op
# threads T, inter-op 1, graph optimisation 'all') for each full-size zoo model.
# usage: bench/ort_zoo.sh [ZOO_DIR (default testsuite/models/out)] [THREADS (2)] [RUNS (10)]
# Generates missing full models first (/usr/bin/python3 testsuite/models/gen_zoo.py --set full).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
zoo="${1:-$root/testsuite/models/out}"
threads="${2:-2}"
runs="${3:-10}"
bash "$root/bench/setup.sh"
models=$(/usr/bin/python3 "$root/testsuite/models/gen_zoo.py" --list --set full)
missing=""
for m in $models; do [ -f "$zoo/$m.onnx" ] || missing="$missing,$m"; done
if [ -n "$missing" ]; then
  /usr/bin/python3 "$root/testsuite/models/gen_zoo.py" --only "${missing#,}" --out "$zoo" >&2
fi
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for m in $models; do
  echo "ort_zoo: $m" >&2
  node "$root/bench/ort_run.mjs" "$zoo/$m.onnx" --threads "$threads" --warmup 3 --runs "$runs" \
    --compare-ref --max-rel-l2 1e-4 --json >> "$results" || echo "ort_zoo: $m: run or check failed" >&2
done
node - "$zoo/zoo.json" "$results" "$threads" "$runs" "$root" <<'JS'
const fs = require('fs');
const [man, res, threads, runs, root] = process.argv.slice(2);
const meta = Object.fromEntries(JSON.parse(fs.readFileSync(man, 'utf8')).models.map(m => [m.name, m]));
const lines = fs.readFileSync(res, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [, '?'])[1];
console.log(`ONNX Runtime (onnxruntime-node ${require(root + '/bench/node_modules/onnxruntime-node/package.json').version}), ${threads} threads, median of ${runs} runs after 3 warm-up, ${cpu}\n`);
console.log('| model | params (M) | input shapes | median ms | min ms | max rel L2 vs torch |');
console.log('|---|---:|---|---:|---:|---:|');
for (const r of lines) {
  const name = r.model.replace(/^.*\//, '').replace(/\.onnx$/, '');
  const m = meta[name] || { params: 0, inputs: [] };
  const shapes = m.inputs.filter(i => !i.name.startsWith('past_key_values.') || i.name === 'past_key_values.0.key')
    .map(i => `${i.name.replace('past_key_values.0.key', 'past (x' + (m.layers || '?') * 2 + ')')} ${i.shape.join('x')}`).join(', ');
  const rel = Math.max(...Object.values(r.outputs).map(o => o.rel_l2 ?? NaN));
  console.log(`| ${name} | ${(m.params / 1e6).toFixed(1)} | ${shapes} | ${r.median_ms.toFixed(1)} | ${r.min_ms.toFixed(1)} | ${rel.toExponential(1)} |`);
}
JS
