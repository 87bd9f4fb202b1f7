// Strided copies for slice, transpose, padSlice and concat, on elements of 2 or 4 bytes.

/**
 * Copies an n-d block (`rank` ≤ 8 axes): element idx goes from src + Σ idx·srcStride to dst + Σ idx·dstStride.
 * params (i32): shape[rank], srcStrides[rank], dstStrides[rank]; strides in elements; pointers in bytes.
 */
export function stridedCopy(src: usize, dst: usize, elemBytes: i32, rank: i32, params: usize): void {
  const shape = params;
  const ss = params + (<usize>rank << 2);
  const ds = params + (<usize>(2 * rank) << 2);
  let total = 1;
  for (let d = 0; d < rank; d++) total *= load<i32>(shape + (<usize>d << 2));
  if (total == 0) return;
  if (rank == 0) {
    memory.copy(dst, src, elemBytes);
    return;
  }
  const last = rank - 1;
  const n = load<i32>(shape + (<usize>last << 2));
  const sInner = load<i32>(ss + (<usize>last << 2));
  const dInner = load<i32>(ds + (<usize>last << 2));
  const rows = total / n;
  // counter[] lives after the params block.
  const counter = params + (<usize>(3 * rank) << 2);
  for (let d = 0; d < rank; d++) store<i32>(counter + (<usize>d << 2), 0);
  let so = 0;
  let dof = 0;
  for (let r = 0; r < rows; r++) {
    if (sInner == 1 && dInner == 1) {
      memory.copy(dst + (<usize>dof * elemBytes), src + (<usize>so * elemBytes), <usize>(n * elemBytes));
    } else if (elemBytes == 4) {
      for (let i = 0; i < n; i++) store<u32>(dst + (<usize>(dof + i * dInner) << 2), load<u32>(src + (<usize>(so + i * sInner) << 2)));
    } else {
      for (let i = 0; i < n; i++) store<u16>(dst + (<usize>(dof + i * dInner) << 1), load<u16>(src + (<usize>(so + i * sInner) << 1)));
    }
    // Advance the outer axes' counter.
    for (let d = last - 1; d >= 0; d--) {
      const cp = counter + (<usize>d << 2);
      const c = load<i32>(cp) + 1;
      const sd = load<i32>(ss + (<usize>d << 2));
      const dd = load<i32>(ds + (<usize>d << 2));
      if (c < load<i32>(shape + (<usize>d << 2))) {
        store<i32>(cp, c);
        so += sd;
        dof += dd;
        break;
      }
      store<i32>(cp, 0);
      so -= sd * (c - 1);
      dof -= dd * (c - 1);
    }
  }
}

/** Row gather: out[i] = table[ids[i]] with rows of rowBytes (any dtype). Ids are validated by the caller. */
export function gatherRows(table: usize, ids: usize, count: i32, rowBytes: i32, out: usize): void {
  for (let i = 0; i < count; i++) {
    const id = load<i32>(ids + (<usize>i << 2));
    memory.copy(out + <usize>i * rowBytes, table + <usize>id * rowBytes, rowBytes);
  }
}

/** dtable[ids[i]] += dout[i] over float32 rows of `dim`. */
export function scatterAddRows(dout: usize, ids: usize, count: i32, dim: i32, dtable: usize): void {
  for (let i = 0; i < count; i++) {
    const src = dout + (<usize>(i * dim) << 2);
    const dst = dtable + (<usize>(load<i32>(ids + (<usize>i << 2)) * dim) << 2);
    let d = 0;
    for (; d + 4 <= dim; d += 4) v128.store(dst + (<usize>d << 2), f32x4.add(v128.load(dst + (<usize>d << 2)), v128.load(src + (<usize>d << 2))));
    for (; d < dim; d++) store<f32>(dst + (<usize>d << 2), load<f32>(dst + (<usize>d << 2)) + load<f32>(src + (<usize>d << 2)));
  }
}
