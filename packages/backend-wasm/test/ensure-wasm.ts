// Vitest global setup: recompiles the AssemblyScript kernels when src/generated/kernels-wasm.ts is older than them.
export default async function ensureWasm(): Promise<void> {
  const build = await import('../scripts/build-wasm.mjs');
  if (build.generatedHash() !== build.sourceHash()) await build.buildWasm();
}
