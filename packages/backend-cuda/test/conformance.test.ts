import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runBackendConformance } from '@mamba-ts/tensor/testing';
import { setCudaOption } from '../src/index.js';
import { describeGpu } from './gpu.js';

// The shared suite: every cpu kernel, forward and backward, odd sizes, f32/bf16/f16, against the cpu oracle.
describeGpu('cuda conformance', () => {
  runBackendConformance('cuda', { describe, test, expect }, { timeout: 120_000 });
});

// The scan again with tiny chunks along the sequence, so the multi-chunk paths (chunk summaries, carried entry
// states and adjoints, per-chunk recomputation in backward) run on the suite's short sequences too.
describeGpu('cuda conformance, selective scan split into chunks of 2 (forward) and 3 (backward) steps', () => {
  beforeAll(() => {
    setCudaOption('scanForwardChunk', 2);
    setCudaOption('scanBackwardChunk', 3);
  });
  afterAll(() => {
    setCudaOption('scanForwardChunk', 0);
    setCudaOption('scanBackwardChunk', 0);
  });
  runBackendConformance('cuda', { describe, test, expect }, { only: ['selectiveScan'], timeout: 120_000 });
});
