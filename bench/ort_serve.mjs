#!/usr/bin/env node
// ort_serve.mjs — ONNX Runtime side of bench/vit_vs_ort.sh: loads MODEL.onnx (CPU EP, intra-op
// THREADS, inter-op 1, sequential, graph optimisation 'all', as bench/ort_run.mjs), feeds the zoo
// inputs MODEL.in.<NAME>.npy, runs WARMUP times, prints "ready", then for every line "run" on
// stdin runs once and prints the latency in ms; "quit" (or EOF) ends it.
// usage: node bench/ort_serve.mjs MODEL.onnx THREADS WARMUP
import readline from 'node:readline';
import { readNpy } from './npy.mjs';

const [model, threadsArg, warmArg] = process.argv.slice(2);
if (!model) { console.error('usage: node bench/ort_serve.mjs MODEL.onnx THREADS WARMUP'); process.exit(2); }
const ort = await import('onnxruntime-node');
const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'],
  intraOpNumThreads: Number(threadsArg || 2), interOpNumThreads: 1, graphOptimizationLevel: 'all',
  executionMode: 'sequential' });
const stem = model.replace(/\.onnx$/, '');
const feeds = {};
for (const name of session.inputNames) {
  const t = readNpy(`${stem}.in.${name}.npy`);
  feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
}
for (let i = 0; i < Number(warmArg || 3); i++) await session.run(feeds);
console.log('ready');
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (line.trim() !== 'run') break;
  const t0 = process.hrtime.bigint();
  await session.run(feeds);
  console.log((Number(process.hrtime.bigint() - t0) / 1e6).toFixed(3));
}
process.exit(0);
