import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs-core');
const wasm = require('@tensorflow/tfjs-backend-wasm');
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
wasm.setThreadsCount(1);
await tf.setBackend('wasm');
console.log(tf.getBackend(), wasm.getThreadsCount?.());
for (const [K, N] of [[768, 3072], [1536, 80], [1536, 768]]) {
  const a = tf.randomNormal([512, K]);
  const b = tf.randomNormal([K, N]);
  for (let i = 0; i < 2; i++) tf.matMul(a, b, false, false).dispose();
  const times = [];
  for (let i = 0; i < 5; i++) { const t0 = performance.now(); const c = tf.matMul(a, b, false, false); c.dataSync(); c.dispose(); times.push(performance.now() - t0); }
  times.sort((x, y) => x - y);
  console.log(K, N, times[2].toFixed(2), 'ms', (2 * 512 * K * N / times[2] / 1e6).toFixed(1), 'GFLOP/s');
}
