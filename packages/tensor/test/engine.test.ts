import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';
import { CpuBackend, engine } from '@mamba-ts/tensor';

describe('memory accounting', () => {
  test('live bytes return to the start after dispose; peak is reported', () => {
    const start = T.memory('cpu');
    const a = T.zeros([10, 10]);
    const b = T.zeros([5], 'bf16');
    expect(T.memory('cpu').liveBytes - start.liveBytes).toBe(400 + 10);
    expect(T.memory('cpu').liveTensors - start.liveTensors).toBe(2);
    a.dispose();
    b.dispose();
    b.dispose(); // idempotent
    const end = T.memory('cpu');
    expect(end.liveBytes).toBe(start.liveBytes);
    expect(end.liveTensors).toBe(start.liveTensors);
    expect(end.peakBytes).toBeGreaterThanOrEqual(start.liveBytes + 410);
    T.resetPeak('cpu');
    expect(T.memory('cpu').peakBytes).toBe(end.liveBytes);
  });

  test('reshape shares storage: the buffer is freed when the last view goes', () => {
    const start = T.memory('cpu').liveBytes;
    const a = T.zeros([4, 4]);
    const v = T.reshape(a, [16]);
    expect(T.memory('cpu').liveBytes - start).toBe(64);
    a.dispose();
    expect(T.memory('cpu').liveBytes - start).toBe(64);
    expect(Array.from(v.dataSync())).toHaveLength(16);
    v.dispose();
    expect(T.memory('cpu').liveBytes).toBe(start);
  });

  test('Symbol.dispose frees a tensor at the end of a block', () => {
    const start = T.memory('cpu').liveBytes;
    {
      using t = T.ones([8]);
      expect(t.size).toBe(8);
    }
    expect(T.memory('cpu').liveBytes).toBe(start);
  });
});

describe('tidy', () => {
  test('disposes intermediates, keeps returned tensors (nested in objects) and kept ones', () => {
    const start = T.memory('cpu').liveTensors;
    let kept!: T.Tensor;
    const out = T.tidy(() => {
      const a = T.ones([3]);
      const b = T.add(a, a);
      kept = T.mul(b, b).keep();
      return { sum: T.sum(b), list: [T.exp(a)] };
    });
    expect(T.memory('cpu').liveTensors - start).toBe(3);
    expect(out.sum.toFloat32Sync()[0]).toBe(6);
    T.dispose([out.sum, out.list[0], kept]);
    expect(T.memory('cpu').liveTensors).toBe(start);
  });

  test('an exception inside tidy still frees what was made', () => {
    const start = T.memory('cpu').liveTensors;
    expect(() =>
      T.tidy(() => {
        T.ones([3]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(T.memory('cpu').liveTensors).toBe(start);
  });

  test('a tidy inside a differentiated function does not free what backprop needs', () => {
    const x = T.tensor([1, 2, 3]);
    const [g] = T.grad(() => T.tidy(() => T.sum(T.mul(T.exp(x), x))), [x]);
    const expected = [1, 2, 3].map((v) => Math.exp(v) * (1 + v));
    Array.from(g.toFloat32Sync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
    T.dispose([x, g]);
  });
});

describe('autograd', () => {
  test('valueAndGrad frees every intermediate; gradients of unused inputs are zeros', () => {
    const x = T.tensor([1, 2]);
    const unused = T.tensor([5]);
    const start = T.memory('cpu');
    const { value, grads } = T.valueAndGrad(() => T.sum(T.square(x)), [x, unused]);
    expect(T.memory('cpu').liveTensors - start.liveTensors).toBe(3);
    expect(Array.from(grads[0].toFloat32Sync())).toEqual([2, 4]);
    expect(Array.from(grads[1].toFloat32Sync())).toEqual([0]);
    T.dispose([value, ...grads]);
    expect(T.memory('cpu').liveBytes).toBe(start.liveBytes);
    T.dispose([x, unused]);
  });

  test('backprop gives memory back as it goes: activations and gradients do not pile up', () => {
    const n = 1 << 18; // 1 MB per f32 tensor
    const x = T.full([n], 0.1);
    const steps = 20;
    const before = T.memory('cpu').liveBytes;
    T.resetPeak('cpu');
    const [g] = T.grad(() => {
      let y = x;
      for (let i = 0; i < steps; i++) y = T.tanh(y);
      return T.sum(y);
    }, [x]);
    const peak = T.memory('cpu').peakBytes - before;
    // The forward holds `steps` activations; keeping every gradient too would double that.
    expect(peak).toBeLessThan((steps + 6) * 4 * n);
    expect(peak).toBeGreaterThanOrEqual(steps * 4 * n);
    g.dispose();
    expect(T.memory('cpu').liveBytes).toBe(before);
    x.dispose();
  });

  test('activations no gradient reads are freed before backprop starts', () => {
    const n = 1 << 16;
    let liveAtBackprop = 0;
    T.registerKernel('cpu', 'probe', ([x], _attrs, backend) => [
      { dataId: backend.upload((x.dataId as { data: Float32Array }).data, 'f32'), shape: x.shape, dtype: 'f32' },
    ]);
    T.engine().registerGradient('probe', ([dy]) => {
      liveAtBackprop = T.memory('cpu').liveBytes;
      return [dy];
    });
    const x = T.full([n], 0.5);
    const c = T.full([n], 0.25);
    const before = T.memory('cpu').liveBytes;
    const [g] = T.grad(() => {
      let h = x;
      for (let i = 0; i < 10; i++) h = T.add(h, c); // add's gradient reads no values
      return T.sum(T.engine().runKernel('probe', [h])[0]);
    }, [x]);
    // Left at that moment: the probe's input and output (its gradient may read them) and a few scalars/seeds.
    expect(liveAtBackprop - before).toBeLessThan(4 * 4 * n);
    T.dispose([x, c, g]);
  });

  test('checkpoint gives the same gradients, for inputs and for parameters read from the closure', () => {
    const x = T.tensor([0.3, -1.2, 0.7, 2.0], [2, 2]);
    const w = T.tensor([0.5, -0.25, 1.5, 0.75], [2, 2]);
    const b = T.tensor([0.1, -0.2]);
    const block = (h: T.Tensor): T.Tensor => T.add(h, T.tanh(T.add(T.matmul(h, w), b)));
    const plain = T.grad(() => T.sum(T.square(block(block(x)))), [x, w, b]);
    const ckpt = T.grad(() => {
      const [h1] = T.checkpoint((h) => [block(h)], [x]);
      const [h2] = T.checkpoint((h) => [block(h)], [h1]);
      return T.sum(T.square(h2));
    }, [x, w, b]);
    plain.forEach((g, i) => {
      const a = g.toFloat32Sync();
      const c = ckpt[i].toFloat32Sync();
      a.forEach((v, j) => expect(c[j]).toBeCloseTo(v, 6));
    });
    T.dispose([x, w, b, ...plain, ...ckpt]);
  });

  test('checkpointed layers hold only their inputs during the forward', () => {
    const n = 1 << 16;
    const x = T.full([n], 0.1);
    const layer = (h: T.Tensor): T.Tensor => T.tanh(T.tanh(T.tanh(T.tanh(h))));
    const peakOf = (useCheckpoint: boolean): number => {
      const before = T.memory('cpu').liveBytes;
      T.resetPeak('cpu');
      const [g] = T.grad(() => {
        let h = x;
        for (let i = 0; i < 8; i++) h = useCheckpoint ? T.checkpoint((v) => [layer(v)], [h])[0] : layer(h);
        return T.sum(h);
      }, [x]);
      g.dispose();
      return T.memory('cpu').peakBytes - before;
    };
    const plain = peakOf(false);
    const ckpt = peakOf(true);
    expect(plain).toBeGreaterThanOrEqual(32 * 4 * n);
    expect(ckpt).toBeLessThan(plain / 2);
    x.dispose();
  });

  test('noGrad records nothing', () => {
    const x = T.tensor([3]);
    const [g] = T.grad(() => T.add(T.noGrad(() => T.square(x)), x), [x]);
    expect(g.toFloat32Sync()[0]).toBe(1);
  });

  test('a gradient flowing through bf16 compute reaches an f32 master weight as f32', () => {
    const w = T.tensor([0.5, -1.25, 2]);
    const [g] = T.grad(() => T.sum(T.square(T.cast(w, 'bf16'))), [w]);
    expect(g.dtype).toBe('f32');
    expect(Array.from(g.toFloat32Sync())).toEqual([1, -2.5, 4]);
  });

  test('a non-scalar function is refused with a clear message', () => {
    const x = T.tensor([1, 2]);
    expect(() => T.grad(() => T.mul(x, x), [x])).toThrow(/one-element tensor, got shape \[2\]/);
  });
});

describe('backends and fallback', () => {
  class PartialBackend extends CpuBackend {
    override readonly name = 'partial';
  }

  test('a kernel missing on a backend runs on cpu, counted, with results copied back', () => {
    const e = engine();
    if (!e.backendNames().includes('partial')) {
      e.registerBackend(new PartialBackend());
      e.registerKernel('partial', 'fill', (_inputs, attrs, backend) => {
        const n = (attrs.shape as number[]).reduce((a, b) => a * b, 1);
        const data = new Float32Array(n).fill(attrs.value as number);
        return [{ dataId: backend.upload(data, 'f32'), shape: attrs.shape as number[], dtype: 'f32' }];
      });
    }
    T.setBackend('partial');
    try {
      e.resetFallbacks();
      const a = T.full([3], 2);
      const b = T.exp(a);
      expect(b.backend).toBe('partial');
      expect(b.toFloat32Sync()[0]).toBeCloseTo(Math.exp(2), 5);
      expect(e.fallbacks()).toEqual({ 'partial:exp': 1 });
      expect(T.memory('partial').liveTensors).toBeGreaterThanOrEqual(2);
      T.dispose([a, b]);
    } finally {
      T.setBackend('cpu');
    }
  });

  test('mixing tensors from two backends is refused naming both', () => {
    T.setBackend('partial');
    const a = T.full([2], 1);
    T.setBackend('cpu');
    const b = T.ones([2]);
    expect(() => T.add(b, a)).toThrow(/input 1 lives on backend "partial" but input 0 on "cpu"; copy one with "await toBackend/);
    T.dispose([a, b]);
  });

  test('toBackend copies a tensor to another backend', async () => {
    const a = T.tensor([1.5, -2], [2], 'bf16');
    const b = await T.toBackend(a, 'partial');
    expect([b.backend, b.dtype, ...b.shape]).toEqual(['partial', 'bf16', 2]);
    expect(Array.from(b.toFloat32Sync())).toEqual([1.5, -2]);
    T.dispose([a, b]);
  });

  test('unknown backend lists the registered ones', () => {
    expect(() => T.setBackend('tpu')).toThrow(/Unknown backend "tpu"; registered backends: cpu/);
  });
});

describe('bad input', () => {
  test('shape mismatches name both shapes', () => {
    expect(() => T.add(T.ones([2, 3]), T.ones([4]))).toThrow('add: shapes [2, 3] and [4] cannot be broadcast together.');
    expect(() => T.matmul(T.ones([2, 3]), T.ones([4, 5]))).toThrow(/inner dimensions differ: \[2, 3\] · \[4, 5\] \(3 vs 4\)/);
    expect(() => T.reshape(T.ones([6]), [4, 2])).toThrow('reshape: cannot reshape [6] (6 elements) to [4, 2].');
    expect(() => T.tensor([1, 2, 3], [2, 2])).toThrow('tensor: 3 values do not fill shape [2, 2] (4 elements).');
  });

  test('dtype mismatches name both dtypes', () => {
    expect(() => T.mul(T.ones([2]), T.ones([2], 'bf16'))).toThrow('mul: dtypes differ (f32 and bf16); cast one input first.');
    expect(() => T.embedding(T.ones([3, 2]), T.ones([2]))).toThrow('embedding: ids must be i32, got f32.');
  });

  test('fused kernels check every shape', () => {
    const u = T.ones([1, 4, 3]);
    expect(() => T.selectiveScan({ u, delta: u, A: T.ones([3, 2]), B: T.ones([1, 4, 3]), C: T.ones([1, 4, 2]) })).toThrow(
      'selectiveScan B: expected shape [1, 4, 2], got [1, 4, 3].',
    );
    expect(() => T.causalConv1d(u, T.ones([4, 4]))).toThrow('causalConv1d weight: expected shape [3, *], got [4, 4].');
  });

  test('using a disposed tensor is refused', () => {
    const a = T.ones([2]);
    a.dispose();
    expect(() => T.exp(a)).toThrow(/exp: tensor #\d+ with shape \[2\] was already disposed/);
  });

  test('ids outside the vocabulary are refused', () => {
    expect(() => T.embedding(T.ones([3, 2]), T.tensor([0, 3], [2], 'i32'))).toThrow(/outside the vocabulary/);
  });
});

describe('half precision tensors', () => {
  test('f16 and bf16 round to nearest even on the way in and compute in f32', () => {
    const x = T.tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11], [2], 'f16');
    expect(Array.from(x.toFloat32Sync())).toEqual([1, 1 + 2 ** -9]);
    const y = T.add(T.tensor([1], [1], 'bf16'), T.tensor([2 ** -9], [1], 'bf16'));
    expect(y.toFloat32Sync()[0]).toBe(1); // 1 + 2^-9 is a tie below bf16's precision: even is 1
  });

  test('matmul accumulates in f32 for bf16 inputs', () => {
    const n = 256;
    const a = T.tensor(new Array(n).fill(1), [1, n], 'bf16');
    const b = T.tensor(new Array(n).fill(1 / 256), [n, 1], 'bf16');
    expect(T.matmul(a, b).toFloat32Sync()[0]).toBe(1);
  });
});
