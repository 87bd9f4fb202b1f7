// Where the time goes in the cuda backend: full fp32, full bf16 and LoRA + bf16 training steps (peft's trainStep, as
// the bench runs it) and decode steps, each with the profiling mode's GPU (CUDA events) and host tables.
//   bundled by tools/gpu/run-profile.sh; on the GPU host:
//   node profile.mjs [--batch 8] [--seq 1024] [--decode-batch 64] [--decode-dtypes fp32,bf16]
//                    [--only full-fp32,full-bf16,lora-bf16,decode]
//   --null-device: a do-nothing addon instead of the GPU, so only the JavaScript side of every op is measured
//   (runs anywhere; the numbers are the host cost the engine and the kernel functions add per op).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '@mamba-ts/tensor';
import { Decoder, MambaLM, presetConfig, type MambaPreset } from '@mamba-ts/ssm';
import { applyLora, applyPrecision, removeLora, trainStep } from '@mamba-ts/peft';
import {
  CudaBackend, cudaKernels, formatCudaProfile, registerCudaBackend, setCudaOption, takeProfile, type CudaProfile,
  type NativeAddon,
} from '@mamba-ts/backend-cuda';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const nullDevice = argv.includes('--null-device');
const preset = (argv.includes('--preset') ? argv[argv.indexOf('--preset') + 1] : '130m') as MambaPreset;
const batch = flag('batch', 8);
const seq = flag('seq', 1024);
const decodeBatch = flag('decode-batch', 64);
const decodeDtypes = (argv.includes('--decode-dtypes') ? argv[argv.indexOf('--decode-dtypes') + 1] : 'fp32,bf16').split(',');
const steps = flag('steps', 2);
const out = process.env.OUT ?? '.';
const report: string[] = [];
const say = (s: string): void => {
  console.log(s);
  report.push(s);
};

/** A native addon that allocates addresses and does nothing else: the JavaScript side's cost alone. */
let nullLaunches = 0;
function nullAddon(): NativeAddon {
  let next = 1 << 20;
  let live = 0;
  const sizes = new Map<number, number>();
  const labels: string[] = [];
  return {
    probe: () => ({ deviceCount: 1, error: '', name: 'null', computeCapability: '9.0', totalMemory: 2 ** 40, driverVersion: 0, runtimeVersion: 0 }),
    init: () => ({ device: 'null', cublasLt: '', cublasLtVersion: 0 }),
    // The addon's ops (MCUDA_OP in native/), by name.
    opNames: () => ['fill', 'cast', 'affine', 'unary', 'binary', 'reduce', 'argmax', 'softmax', 'gather', 'padSlice', 'concat', 'matmul',
      'rmsNorm', 'rmsNormGrad', 'layerNorm', 'layerNormGrad', 'embedding', 'embeddingGrad', 'causalConv1d', 'causalConv1dGrad',
      'selectiveScan', 'selectiveScanGrad', 'selectiveStateUpdate', 'crossEntropy', 'crossEntropyGrad', 'linearCrossEntropy',
      'linearCrossEntropyGrad', 'adamw', 'sumSquares', 'residualRmsNorm', 'convStep', 'ssmStep', 'copyMany'],
    malloc: (bytes) => {
      const a = next;
      next += Math.ceil(bytes / 256) * 256;
      sizes.set(a, bytes);
      live += bytes;
      return a;
    },
    free: (address) => {
      live -= sizes.get(address) ?? 0;
      sizes.delete(address);
    },
    upload: () => {},
    read: async (_address, bytes) => new ArrayBuffer(bytes),
    sync: async () => {},
    memory: () => ({ liveBytes: live, peakBytes: live, reservedBytes: live, cachedBytes: 0, liveBuffers: sizes.size }),
    resetPeak: () => {},
    emptyCache: () => {},
    launch: () => {
      nullLaunches++;
    },
    label: (name) => labels.push(name) - 1,
    setOption: () => {},
    profileReport: () => [],
    captureBegin: () => {},
    captureEnd: () => 0,
    captureAbort: () => {},
    graphLaunch: () => {},
    graphDestroy: () => {},
  };
}

function useCuda(): void {
  if (nullDevice) {
    T.registerCpuBackend();
    const backend = new CudaBackend(nullAddon());
    T.engine().registerBackend(backend, { activate: true });
    for (const [name, fn] of Object.entries(cudaKernels())) T.engine().registerKernel('cuda', name, fn);
  } else {
    registerCudaBackend({ activate: true });
  }
}

function ids(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0 || 1;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

function profileStart(): void {
  nullLaunches = 0;
  if (!nullDevice) {
    setCudaOption('profile', 1);
    takeProfile();
  }
}

function profileTake(): CudaProfile | null {
  if (nullDevice) {
    say(`  (null device: ${nullLaunches} native launches)`);
    return null;
  }
  const p = takeProfile();
  setCudaOption('profile', 0);
  return p;
}

const TRAINING_MODES = ['full-fp32', 'full-bf16', 'lora-bf16'] as const;

async function training(model: MambaLM, mode: (typeof TRAINING_MODES)[number]): Promise<void> {
  const lora = mode === 'lora-bf16';
  if (lora) applyLora(model, { r: 8, alpha: 16, targets: ['x_proj', 'embeddings', 'in_proj'], seed: 1 });
  applyPrecision(model, mode === 'full-fp32' ? 'fp32' : 'bf16');
  const params = model.trainableParameters();
  const optimizer = new T.AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const tokens = ids(batch * seq, model.config.vocabSize, 7);
  const b = { ids: tokens, labels: tokens, batch, length: seq, tokens: batch * seq };
  const step = () => trainStep(model, params, optimizer, [b], { lr: 1e-4, maxGradNorm: 1, scaler: null });
  for (let i = 0; i < 2; i++) await step();
  await T.engine().sync();
  profileStart();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  await T.engine().sync();
  const wall = (performance.now() - t0) / steps;
  const p = profileTake();
  say(`\n== ${mode} training step, batch ${batch} × ${seq}: ${wall.toFixed(1)} ms wall per step (profiling on), ${((batch * seq) / (wall / 1000)).toFixed(0)} tokens/s`);
  if (p) say(formatCudaProfile(p, { per: steps }));
  optimizer.dispose();
  if (lora) removeLora(model);
  model.computeDType = 'f32';
}

/** Greedy decode steps of a Decoder run eagerly (no graph: the profile sees every kernel of the fused step). */
async function decode(model: MambaLM, b: number, dtype: 'fp32' | 'bf16'): Promise<void> {
  applyPrecision(model, dtype);
  const decoder = new Decoder(model, b, { capture: false });
  const n = 32;
  decoder.feed(ids(b, model.config.vocabSize, 3));
  const one = async () => {
    decoder.advance();
    await decoder.argmax();
  };
  for (let t = 0; t < 4; t++) await one();
  profileStart();
  const t0 = performance.now();
  for (let t = 0; t < n; t++) await one();
  const wall = (performance.now() - t0) / n;
  const p = profileTake();
  say(`\n== decode ${dtype}, batch ${b}, eager ${decoder.fused ? 'fused' : 'model.step'} step: ${wall.toFixed(3)} ms wall per token step (profiling on), ${((1000 * b) / wall).toFixed(0)} tokens/s`);
  if (p) say(formatCudaProfile(p, { per: n }));
  decoder.dispose();
  model.computeDType = 'f32';
}

/** Host cost per op: time per step divided by the engine kernels run (counted from the fallback-free engine). */
async function main(): Promise<void> {
  useCuda();
  const model = new MambaLM(presetConfig(preset), { seed: 0 });
  say(`profile: preset ${preset}${nullDevice ? ' (null device: JavaScript cost only)' : ''}`);
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : null;
  const want = (part: string): boolean => !only || only.includes(part);
  for (const mode of TRAINING_MODES) if (want(mode)) await training(model, mode);
  if (want('decode')) {
    if (decodeDtypes.includes('fp32')) await decode(model, 1, 'fp32');
    if (decodeDtypes.includes('bf16')) for (const b of new Set([1, decodeBatch])) await decode(model, b, 'bf16');
  }
  writeFileSync(join(out, nullDevice ? 'profile-null.txt' : 'profile.txt'), report.join('\n') + '\n');
}

await main();
