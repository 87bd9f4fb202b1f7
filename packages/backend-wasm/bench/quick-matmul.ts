import * as T from '@mamba-ts/tensor';
import { registerWasmBackendSync } from '@mamba-ts/backend-wasm';
registerWasmBackendSync({ activate: true });
for (const [K, N, tb] of [[768, 3072, true], [1536, 80, true], [1536, 768, true], [768, 3072, false]] as const) {
  const a = T.randomNormal([512, K]);
  const b = T.randomNormal(tb ? [N, K] : [K, N]);
  for (let i = 0; i < 2; i++) T.matmul(a, b, { transB: tb }).dispose();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) { const t0 = performance.now(); T.matmul(a, b, { transB: tb }).dispose(); times.push(performance.now() - t0); }
  times.sort((x, y) => x - y);
  console.log(K, N, tb, times[2].toFixed(2), 'ms', ((2 * 512 * K * N) / times[2] / 1e6).toFixed(1), 'GFLOP/s');
}
