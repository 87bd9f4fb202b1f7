// Greedy decoding on cuda at the Mamba-130m shape (random weights, bf16), with the decode-path kernels started early
// (programmatic dependent launch) and started in turn, side by side: rounds alternate the two, each round a new
// Decoder (its own captured graph) that advances `tokens` steps, reading every step's ids one step behind as a
// streaming generator would. Rate = tokens over the whole timed run of a round; the median round is reported.
// A program, not a test: prints JSON, then a table.
//   node bench-decode.mjs [tokens [batch,batch,… [rounds]]]
import * as T from '@mamba-ts/tensor';
import { Decoder, MambaLM, presetConfig } from '@mamba-ts/ssm';
import { setCudaOption } from '../src/index.js';
import { startCuda } from './common.js';

const tokens = Number(process.argv[2] ?? 256);
const batches = (process.argv[3] ?? '1,64').split(',').map(Number);
const ROUNDS = Number(process.argv[4] ?? 5);

async function tokensPerSecond(model: MambaLM, batch: number): Promise<number> {
  const decoder = new Decoder(model, batch);
  try {
    decoder.feed(Int32Array.from({ length: batch }, (_, b) => (b * 7919) % model.config.vocabSize));
    await decoder.argmax();
    decoder.advance(); // captured on the first call, then replayed
    let pending = decoder.argmax();
    const start = performance.now();
    for (let t = 1; t < tokens; t++) {
      decoder.advance();
      await pending;
      pending = decoder.argmax();
    }
    await pending;
    return (batch * (tokens - 1)) / ((performance.now() - start) / 1000);
  } finally {
    decoder.dispose();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function main(): Promise<void> {
  if (!startCuda()) return;
  const model = new MambaLM(presetConfig('130m'), { seed: 1 });
  model.computeDType = 'bf16';
  const results = [];
  for (const batch of batches) {
    const rates: Record<'early' | 'inTurn', number[]> = { early: [], inTurn: [] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const [mode, option] of [['early', 1], ['inTurn', 0]] as const) {
        setCudaOption('dependentLaunch', option);
        rates[mode].push(await tokensPerSecond(model, batch));
      }
    }
    setCudaOption('dependentLaunch', -1);
    const early = median(rates.early);
    const inTurn = median(rates.inTurn);
    results.push({ batch, tokens, rounds: ROUNDS, early, inTurn, ratio: early / inTurn, rates });
  }
  model.dispose();
  console.log(JSON.stringify({ model: '130m', dtype: 'bf16', results }, null, 1));
  console.log('\nbatch | tokens/s, kernels started early | started in turn | ratio');
  for (const r of results) console.log(`${r.batch} | ${Math.round(r.early)} | ${Math.round(r.inTurn)} | ${r.ratio.toFixed(3)}`);
}

await main();
