import { expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';

test('write overwrites a tensor in place; wrong sizes and array kinds are named', () => {
  T.setBackend('cpu');
  const t = T.zeros([2, 2]);
  const view = T.reshape(t, [4]);
  T.engine().write(t, Float32Array.of(1, 2, 3, 4));
  expect(Array.from(view.dataSync())).toEqual([1, 2, 3, 4]);
  expect(() => T.engine().write(t, Float32Array.of(1))).toThrow('write: 1 values given for a tensor of 4 [2, 2].');
  expect(() => T.engine().write(t, Int32Array.of(1, 2, 3, 4))).toThrow('write: a f32 tensor takes a Float32Array, got a Int32Array.');
  T.dispose([t, view]);
});

test('assign copies each source over its destination', () => {
  const a = T.zeros([3]);
  const b = T.zeros([2], 'i32');
  T.engine().assign([
    [a, T.tensor([1, 2, 3])],
    [b, T.tensor([7, 8], [2], 'i32')],
  ]);
  expect(Array.from(a.dataSync())).toEqual([1, 2, 3]);
  expect(Array.from(b.dataSync())).toEqual([7, 8]);
  expect(() => T.engine().assign([[a, T.tensor([1, 2])]])).toThrow(
    'assign: pair 0 copies f32[2] on "cpu" over f32[3] on "cpu"; both must have the same backend, dtype and size.',
  );
});

test('capture needs a backend that can record graphs', () => {
  T.setBackend('cpu');
  expect(T.engine().canCapture()).toBe(false);
  expect(() => T.engine().capture(() => T.zeros([1]))).toThrow(
    'capture: backend "cpu" cannot capture work into a graph; check engine().canCapture() first.',
  );
});
