import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { HeapAllocator, registerWasmBackendSync, type WasmBackend } from '@mamba-ts/backend-wasm';

const backend: WasmBackend = registerWasmBackendSync();

describe('HeapAllocator size classes', () => {
  test('round up to quarter steps of a power of two, at least 16 bytes', () => {
    expect([1, 16, 17, 100, 1000, 1025, 4096, 5000].map(HeapAllocator.sizeClass)).toEqual([16, 16, 32, 112, 1024, 1280, 4096, 5120]);
    for (let n = 1; n < 1e6; n = Math.ceil(n * 1.37)) {
      const c = HeapAllocator.sizeClass(n);
      expect(c % 16).toBe(0);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c).toBeLessThanOrEqual(Math.max(16, n * 1.25 + 16));
    }
  });
});

describe('wasm backend memory', () => {
  test('reports live and peak bytes of tensors and returns to the start after disposal', () => {
    T.setBackend('wasm');
    try {
      T.resetPeak('wasm');
      const start = T.memory('wasm');
      const a = T.zeros([3, 5]);
      const b = T.zeros([7], 'bf16');
      expect(T.memory('wasm').liveBytes - start.liveBytes).toBe(15 * 4 + 7 * 2);
      expect(T.memory('wasm').liveTensors - start.liveTensors).toBe(2);
      a.dispose();
      b.dispose();
      const end = T.memory('wasm');
      expect(end.liveBytes).toBe(start.liveBytes);
      expect(end.peakBytes).toBeGreaterThanOrEqual(start.liveBytes + 74);
      expect(end.reservedBytes).toBeGreaterThan(0);
    } finally {
      T.setBackend('cpu');
    }
  });

  test('reuses freed blocks of the same size class', () => {
    const first = backend.allocBytes(1000);
    backend.freeBytes(first);
    const second = backend.allocBytes(990);
    expect(second.ptr).toBe(first.ptr);
    backend.freeBytes(second);
  });

  test('growing the memory keeps existing tensors readable (views are re-created)', () => {
    T.setBackend('wasm');
    try {
      const small = T.tensor([1.5, -2, 3.25], [3]);
      const heapBefore = backend.heapBytes;
      const big = T.zeros([Math.ceil(heapBefore / 4) + 1000]);
      expect(backend.heapBytes).toBeGreaterThan(heapBefore);
      expect(Array.from(small.dataSync())).toEqual([1.5, -2, 3.25]);
      expect(Array.from(T.add(small, small).dataSync())).toEqual([3, -4, 6.5]);
      expect(big.dataSync()[big.size - 1]).toBe(0);
      big.dispose();
      small.dispose();
    } finally {
      T.setBackend('cpu');
    }
  });

  test('freshly allocated zero tensors are zero even when the block is reused', () => {
    T.setBackend('wasm');
    try {
      const filled = T.full([257], 7);
      filled.dispose();
      const zeros = T.zeros([257]);
      expect(zeros.dataSync().every((v) => v === 0)).toBe(true);
      zeros.dispose();
    } finally {
      T.setBackend('cpu');
    }
  });

  test('bad ids and targets are reported as on cpu', () => {
    T.setBackend('wasm');
    try {
      const table = T.zeros([4, 3]);
      const ids = T.tensor([0, 4], [2], 'i32');
      expect(() => T.embedding(table, ids)).toThrow(/ids\[1\] = 4 is outside the vocabulary \[0, 4\)/);
      const logits = T.zeros([2, 4]);
      expect(() => T.crossEntropy(logits, T.tensor([1, 9], [2], 'i32'))).toThrow(/targets\[1\] = 9 is outside the vocabulary/);
      for (const t of [table, ids, logits]) t.dispose();
    } finally {
      T.setBackend('cpu');
    }
  });
});
