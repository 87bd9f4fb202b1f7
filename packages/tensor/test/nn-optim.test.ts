import { describe, expect, test } from 'vitest';
import * as T from '@mamba-ts/tensor';

class TinyNet extends T.Module {
  readonly emb = this.registerModule('embed', new T.Embedding(7, 6, { seed: 1 }));
  readonly layers = this.registerModule('layers', new T.ModuleList([new T.Linear(6, 6, { seed: 2 }), new T.Linear(6, 6, { seed: 3, bias: false })]));
  readonly norm = this.registerModule('norm', new T.RMSNorm(6));

  loss(ids: T.Tensor, targets: T.Tensor): T.Tensor {
    let h = this.emb.forward(ids);
    for (const layer of this.layers.items) h = T.add(h, T.silu(layer.forward(this.norm.forward(h))));
    return T.linearCrossEntropy(T.reshape(h, [-1, 6]), this.emb.weight.value, targets);
  }
}

describe('nn', () => {
  test('modules expose Hugging Face style dotted parameter paths', () => {
    const net = new TinyNet();
    expect([...net.namedParameters()].map(([n]) => n)).toEqual([
      'embed.weight', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'norm.weight',
    ]);
    expect(net.getParameter('layers.1.weight')?.shape).toEqual([6, 6]);
    expect(net.getModule('layers.0')).toBeInstanceOf(T.Linear);
    expect(net.parameterCount()).toBe(42 + 36 + 6 + 36 + 6);
    net.dispose();
  });

  test('Linear computes x·Wᵀ + b and casts f32 weights to the activation dtype', () => {
    const lin = new T.Linear(2, 3);
    lin.weight.assign(T.tensor([1, 2, 3, 4, 5, 6], [3, 2]));
    lin.bias!.assign(T.tensor([0.5, 0, -1]));
    expect(Array.from(lin.forward(T.tensor([1, -1], [1, 1, 2])).toFloat32Sync())).toEqual([-0.5, -1, -2]);
    const y = lin.forward(T.tensor([1, -1], [1, 2], 'bf16'));
    expect(y.dtype).toBe('bf16');
    expect(Array.from(y.toFloat32Sync())).toEqual([-0.5, -1, -2]);
    lin.dispose();
  });
});

describe('optimizers', () => {
  test('AdamW matches torch.optim.AdamW on one parameter for two steps', () => {
    // torch: p=[1,-2], lr=0.1, betas=(0.9,0.999), eps=1e-8, wd=0.1; grads [0.5,-1] then [0.25,0.5]
    const p = new T.Parameter(T.tensor([1, -2]));
    const opt = new T.AdamW([p], { lr: 0.1, weightDecay: 0.1 });
    opt.step([T.tensor([0.5, -1])]);
    opt.step([T.tensor([0.25, 0.5])]);
    const got = Array.from(p.value.toFloat32Sync());
    // Step 1: p*=(1-0.01) then -= 0.1*sign → [0.89, -1.88]; step 2 computed by hand from the Adam formulas.
    const m1 = [0.05, -0.1], v1 = [0.00025, 0.001];
    const m2 = [0.9 * m1[0] + 0.1 * 0.25, 0.9 * m1[1] + 0.1 * 0.5];
    const v2 = [0.999 * v1[0] + 0.001 * 0.0625, 0.999 * v1[1] + 0.001 * 0.25];
    const exp = [0.89, -1.88].map((x, i) => {
      const mh = m2[i] / (1 - 0.81);
      const vh = v2[i] / (1 - 0.999 ** 2);
      return x * (1 - 0.01) - (0.1 * mh) / (Math.sqrt(vh) + 1e-8);
    });
    got.forEach((g, i) => expect(g).toBeCloseTo(exp[i], 5));
    opt.dispose();
    p.dispose();
  });

  test('clipGradNorm scales to the max norm and reports the norm', () => {
    const { grads, norm } = T.clipGradNorm([T.tensor([3, 0]), T.tensor([4])], 1);
    expect(norm.toFloat32Sync()[0]).toBeCloseTo(5, 5);
    expect(grads[0].toFloat32Sync()[0]).toBeCloseTo(0.6, 5);
    expect(grads[1].toFloat32Sync()[0]).toBeCloseTo(0.8, 5);
    const empty = T.clipGradNorm([], 1);
    expect([empty.grads.length, empty.norm.toFloat32Sync()[0]]).toEqual([0, 0]);
  });

  test('a frozen parameter is cast once per dtype; unfreezing drops the copy', () => {
    const p = new T.Parameter(T.tensor([1.5, -2]), { requiresGrad: false });
    const a = p.as('bf16');
    expect(p.as('bf16')).toBe(a);
    const live = T.memory().liveTensors;
    p.requiresGrad = true;
    const fresh = p.as('bf16');
    expect(fresh).not.toBe(a);
    expect(a.isDisposed).toBe(true);
    expect(T.memory().liveTensors).toBe(live);
    fresh.dispose();
    p.dispose();
  });

  test('schedules warm up linearly then decay', () => {
    const cos = T.cosineSchedule({ lr: 1, warmupSteps: 4, totalSteps: 14, minLr: 0.1 });
    expect([0, 3, 4, 9, 14].map(cos)).toEqual([0.25, 1, 1, expect.closeTo(0.55, 10), expect.closeTo(0.1, 10)]);
    const lin = T.linearSchedule({ lr: 2, warmupSteps: 0, totalSteps: 10 });
    expect([0, 5, 10, 20].map(lin)).toEqual([2, 1, 0, 0]);
  });

  test('a forward + backward + AdamW step inside tidy leaks nothing and lowers the loss', () => {
    const net = new TinyNet();
    const params = net.trainableParameters();
    const opt = new T.AdamW(params, { lr: 0.05 });
    const ids = T.tensor([1, 2, 3, 4, 5, 6], [2, 3], 'i32');
    const targets = T.tensor([2, 3, 4, 5, 6, 0], [6], 'i32');
    const losses: number[] = [];
    const step = () =>
      T.tidy(() => {
        const { value, grads } = T.valueAndGrad(() => net.loss(ids, targets), params.map((p) => p.value));
        losses.push(value.toFloat32Sync()[0]);
        opt.step(T.clipGradNorm(grads, 1).grads);
      });
    step();
    const before = T.memory('cpu');
    for (let i = 0; i < 20; i++) step();
    const after = T.memory('cpu');
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.7);
    net.dispose();
    opt.dispose();
  });
});
