/**
 * Embedding lookup: out[i, :] = table[ids[i], :]; its backward scatter-adds dout rows into dtable.
 * Shapes: ids: (P) positions; table, dtable: (vocab, dim); out, dout: (P, dim).
 */
import type { FArray } from './common.js';
import { checkLength } from './common.js';

export interface EmbeddingForwardArgs {
  ids: Int32Array;
  vocab: number;
  dim: number;
  table: FArray;
  out: FArray;
}

export interface EmbeddingBackwardArgs {
  ids: Int32Array;
  vocab: number;
  dim: number;
  dout: FArray;
  /** Accumulated (+=); repeated ids add up. */
  dtable: FArray;
}

function checkIds(where: string, ids: Int32Array, vocab: number): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw new Error(
        `${where}: ids[${i}] = ${ids[i]} is outside the vocabulary [0, ${vocab}) (vocabulary size ${vocab}).`,
      );
    }
  }
}

export function embeddingForward(args: EmbeddingForwardArgs): void {
  const where = 'embeddingForward';
  const { ids, vocab, dim, table, out } = args;
  checkLength(where, 'table', table, vocab * dim, `(vocab, dim) = (${vocab}, ${dim})`);
  checkLength(where, 'out', out, ids.length * dim, `(positions, dim) = (${ids.length}, ${dim})`);
  checkIds(where, ids, vocab);
  for (let i = 0; i < ids.length; i++) {
    for (let d = 0; d < dim; d++) out[i * dim + d] = table[ids[i] * dim + d];
  }
}

export function embeddingBackward(args: EmbeddingBackwardArgs): void {
  const where = 'embeddingBackward';
  const { ids, vocab, dim, dout, dtable } = args;
  checkLength(where, 'dout', dout, ids.length * dim, `(positions, dim) = (${ids.length}, ${dim})`);
  checkLength(where, 'dtable', dtable, vocab * dim, `(vocab, dim) = (${vocab}, ${dim})`);
  checkIds(where, ids, vocab);
  for (let i = 0; i < ids.length; i++) {
    for (let d = 0; d < dim; d++) dtable[ids[i] * dim + d] += dout[i * dim + d];
  }
}
