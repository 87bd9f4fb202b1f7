import { mkdtemp, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_SAFETENSORS_HEADER_BYTES,
  SafetensorsError,
  parseSafetensorsHeader,
  readSafetensors,
  serializeSafetensors,
} from '../src/io/safetensors.js';
import type { SafetensorsDType, SafetensorsTensorInput } from '../src/io/safetensors.js';
import {
  SafetensorsFile,
  openCheckpoint,
  writeSafetensorsFile,
  writeShardedCheckpoint,
} from '../src/io/safetensors-node.js';

/** Builds a file by hand: 8-byte length, the header text exactly as given (no padding), then `data`. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function parse(file: Uint8Array, source = 'model.safetensors') {
  return parseSafetensorsHeader(file, file.length, source);
}

function parseError(file: Uint8Array, source = 'model.safetensors'): SafetensorsError {
  try {
    parse(file, source);
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return e as SafetensorsError;
  }
  throw new Error('expected the header to be rejected');
}

const f32 = (n: number) => new Uint8Array(new Float32Array(n).fill(1.5).buffer);

/** One sample tensor per dtype with distinctive values. */
function sampleTensors(): Record<string, SafetensorsTensorInput> {
  return {
    f64: { dtype: 'F64', shape: [3], data: new Float64Array([1.25, -2, Math.PI]) },
    f32: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, -6.5]) },
    f16: { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7c00]) },
    bf16: { dtype: 'BF16', shape: [1, 3], data: new Uint16Array([0x3f80, 0x4000, 0xff80]) },
    i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 7n]) },
    i32: { dtype: 'I32', shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) },
    i16: { dtype: 'I16', shape: [3], data: new Int16Array([-32768, 1, 32767]) },
    i8: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
    u8: { dtype: 'U8', shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) },
    bool: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
    u16: { dtype: 'U16', shape: [1], data: new Uint16Array([65535]) },
    u32: { dtype: 'U32', shape: [2], data: new Uint32Array([0, 2 ** 32 - 1]) },
    u64: { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
    scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    'empty.i64': { dtype: 'I64', shape: [2, 0], data: new BigInt64Array(0) },
  };
}

const EXPECTED_CTOR: Record<SafetensorsDType, Function> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  U16: Uint16Array,
  U32: Uint32Array,
  U64: BigUint64Array,
};

describe('serialize + read round trip', () => {
  it('keeps every dtype, scalar and empty tensors, and metadata', () => {
    const tensors = sampleTensors();
    const bytes = serializeSafetensors(tensors, { format: 'pt', note: 'héllo' });
    const file = readSafetensors(bytes, 'round-trip');
    expect(file.names().sort()).toEqual(Object.keys(tensors).sort());
    expect(file.metadata).toEqual({ format: 'pt', note: 'héllo' });
    for (const [name, t] of Object.entries(tensors)) {
      const got = file.get(name);
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data).toBeInstanceOf(EXPECTED_CTOR[t.dtype]);
      expect(Array.from(got.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as unknown as ArrayLike<unknown>));
    }
  });

  it('pads the header to 8 bytes and keeps every tensor aligned, so reads are zero-copy views', () => {
    const bytes = serializeSafetensors(sampleTensors());
    const header = parse(bytes);
    expect(header.headerLength % 8).toBe(0);
    expect(new TextDecoder().decode(bytes.subarray(8, header.dataStart))).toMatch(/^\{.*\} *$/);
    const file = readSafetensors(bytes);
    for (const name of file.names()) {
      const { data } = file.get(name);
      expect(data.buffer).toBe(bytes.buffer);
    }
    // Writes through the input bytes show up in the view.
    const { begin } = file.info('u8');
    bytes[header.dataStart + begin] = 99;
    expect(file.get('u8').data[0]).toBe(99);
  });

  it('orders tensors by element size then name, __metadata__ first, offsets contiguous', () => {
    const bytes = serializeSafetensors(
      [
        ['b', { dtype: 'F16', shape: [1], data: new Uint16Array(1) }],
        ['a', { dtype: 'F16', shape: [1], data: new Uint16Array(1) }],
        ['c', { dtype: 'F64', shape: [1], data: new Float64Array(1) }],
        ['d', { dtype: 'U8', shape: [3], data: new Uint8Array(3) }],
      ],
      { k: 'v' },
    );
    const header = parse(bytes);
    const text = new TextDecoder().decode(bytes.subarray(8, header.dataStart));
    expect(Object.keys(JSON.parse(text))).toEqual(['__metadata__', 'c', 'a', 'b', 'd']);
    expect([...header.tensors].map(([n, t]) => [n, t.begin, t.end])).toEqual([
      ['c', 0, 8],
      ['a', 8, 10],
      ['b', 10, 12],
      ['d', 12, 15],
    ]);
  });

  it('accepts a Map of tensors and an empty file with no tensors', () => {
    const map = new Map([['x', { dtype: 'I32' as const, shape: [1], data: new Int32Array([5]) }]]);
    expect(readSafetensors(serializeSafetensors(map)).get('x').data[0]).toBe(5);
    const empty = readSafetensors(serializeSafetensors({}));
    expect(empty.names()).toEqual([]);
    expect(empty.metadata).toEqual({});
  });

  it('keeps odd names such as "__proto__" as ordinary keys', () => {
    const bytes = serializeSafetensors(
      { __proto__x: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } },
      JSON.parse('{"__proto__": "p"}'),
    );
    const file = readSafetensors(bytes);
    expect(Object.keys(file.metadata)).toEqual(['__proto__']);
    expect(file.metadata.__proto__).toBe('p');
    const withProto = rawFile('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array([7]));
    expect(readSafetensors(withProto).get('__proto__').data[0]).toBe(7);
  });

  it('copies tensors whose data is not aligned (unpadded header) and still reads the right values', () => {
    const values = new Float32Array([1.5, -2.25, 3e-3]);
    const header = { w: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } };
    let text = JSON.stringify(header);
    while ((8 + text.length) % 4 !== 1) text += ' ';
    const bytes = rawFile(text, bytesOf(values));
    expect(parse(bytes).dataStart % 4).toBe(1);
    const got = readSafetensors(bytes).get('w');
    expect(got.data.buffer).not.toBe(bytes.buffer);
    expect(Array.from(got.data as Float32Array)).toEqual(Array.from(values));
  });

  it('copies when the input bytes themselves start at an unaligned byteOffset', () => {
    const file = serializeSafetensors({ v: { dtype: 'F64', shape: [2], data: new Float64Array([0.1, -7]) } });
    const host = new Uint8Array(file.length + 3);
    host.set(file, 3);
    const got = readSafetensors(host.subarray(3)).get('v');
    expect(got.data.buffer).not.toBe(host.buffer);
    expect(Array.from(got.data as Float64Array)).toEqual([0.1, -7]);
    // At an 8-aligned offset it is a view again.
    const host8 = new Uint8Array(file.length + 8);
    host8.set(file, 8);
    expect(readSafetensors(host8.subarray(8)).get('v').data.buffer).toBe(host8.buffer);
  });
});

describe('header validation', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('accepts a hand-built valid file', () => {
    expect(parse(rawFile(ok, f32(2))).tensors.get('a')).toEqual({ dtype: 'F32', shape: [2], begin: 0, end: 8 });
  });

  it('rejects files shorter than 8 bytes', () => {
    expect(parseError(new Uint8Array(5)).message).toBe(
      'model.safetensors: file is 5 bytes, shorter than the 8-byte safetensors header length; the file is corrupt or was written incorrectly.',
    );
  });

  it('rejects a header length larger than the file', () => {
    const bytes = rawFile(ok, f32(2));
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    expect(parseError(bytes).message).toMatch(/^model\.safetensors: header length 18446744073709551615 is larger than the \d+ bytes after the length field/);
  });

  it('rejects a header length above the 100 MB cap before reading the header', () => {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(MAX_SAFETENSORS_HEADER_BYTES + 1), true);
    // Only 8 bytes are given while the file claims to be 1 GB: the cap must fire before anything else.
    expect(() => parseSafetensorsHeader(prefix, 1e9, 'big.safetensors')).toThrow(
      /^big\.safetensors: header length 100000001 exceeds the 100000000-byte limit/,
    );
  });

  it('rejects non-UTF-8, non-JSON and non-object headers', () => {
    const bad = rawFile('{"a":1}');
    bad[9] = 0xff;
    expect(parseError(bad).message).toMatch(/^model\.safetensors: header is not valid UTF-8;/);
    expect(parseError(rawFile('{"a": ')).message).toMatch(/^model\.safetensors: header is not valid JSON \(/);
    expect(parseError(rawFile('[1,2]')).message).toMatch(/^model\.safetensors: header must be a JSON object but is \[1,2\];/);
    expect(parseError(rawFile('null')).message).toMatch(/header must be a JSON object but is null/);
    expect(parseError(rawFile('\ufeff{}')).message).toMatch(/not valid JSON/);
  });

  it('rejects entries that are not objects or miss fields', () => {
    expect(parseError(rawFile({ a: 5 })).message).toBe(
      'model.safetensors: tensor "a" must be an object with dtype, shape and data_offsets but is 5; the file is corrupt or was written incorrectly.',
    );
    expect(parseError(rawFile({ a: { shape: [], data_offsets: [0, 4] } })).message).toMatch(/tensor "a" is missing "dtype"/);
    expect(parseError(rawFile({ a: { dtype: 'F32', data_offsets: [0, 4] } })).message).toMatch(/tensor "a" is missing "shape"/);
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1] } })).message).toMatch(/tensor "a" is missing "data_offsets"/);
  });

  it('rejects fields of the wrong type', () => {
    expect(parseError(rawFile({ a: { dtype: 4, shape: [1], data_offsets: [0, 4] } })).message).toMatch(/tensor "a" has unknown dtype 4/);
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: '1', data_offsets: [0, 4] } })).message).toMatch(
      /tensor "a" has shape "1", which is not an array/,
    );
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } })).message).toMatch(
      /tensor "a" has data_offsets \[0\], which is not a pair of non-negative integers/,
    );
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: ['0', 4] } })).message).toMatch(
      /tensor "a" has data_offsets \["0",4\]/,
    );
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } })).message).toMatch(/data_offsets \[-4,0\]/);
  });

  it('rejects unknown dtypes and lists the known ones', () => {
    expect(parseError(rawFile({ 'x.y': { dtype: 'F128', shape: [1], data_offsets: [0, 16] } })).message).toBe(
      'model.safetensors: tensor "x.y" has unknown dtype "F128"; known dtypes are F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, U16, U32, U64.',
    );
  });

  it('rejects negative and non-integer dimensions', () => {
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 0] } })).message).toMatch(
      /tensor "a" has shape \[2,-1\] with dimension -1, which is not a non-negative integer/,
    );
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 6] } })).message).toMatch(/dimension 1\.5/);
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [null], data_offsets: [0, 4] } })).message).toMatch(/dimension null/);
  });

  it('rejects byte ranges that do not match shape and dtype', () => {
    const file = rawFile({ 'a.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12));
    expect(parseError(file).message).toBe(
      'model.safetensors: tensor "a.weight" has data_offsets [0, 12] but shape [2,2] of F32 needs 16 bytes; the file is corrupt or was written incorrectly.',
    );
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(8))).message).toMatch(
      /tensor "a" has data_offsets \[8, 4\] with end before begin/,
    );
    // Huge dimensions must not overflow into a match.
    const huge = rawFile({ a: { dtype: 'F64', shape: [2 ** 52, 2 ** 52, 2 ** 52, 0], data_offsets: [0, 0] } });
    expect(parse(huge).tensors.get('a')!.shape[3]).toBe(0);
    expect(parseError(rawFile({ a: { dtype: 'F64', shape: [2 ** 52, 2 ** 52], data_offsets: [0, 0] } })).message).toMatch(/needs/);
  });

  it('rejects offsets outside the data section', () => {
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1))).message).toBe(
      'model.safetensors: tensor "a" has data_offsets [0, 8] beyond the 4-byte data section; the file is truncated or corrupt.',
    );
  });

  it('rejects overlapping tensors', () => {
    const header = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    expect(parseError(rawFile(header, f32(3))).message).toBe(
      'model.safetensors: tensor "b" at data_offsets [4, 12] overlaps tensor "a" which ends at 8; the file is corrupt or was written incorrectly.',
    );
  });

  it('rejects holes and data not covered by any tensor', () => {
    const gap = {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    };
    expect(parseError(rawFile(gap, f32(3))).message).toBe(
      'model.safetensors: data bytes [4, 8) before tensor "b" belong to no tensor; the file is corrupt or was written incorrectly.',
    );
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2))).message).toMatch(
      /data bytes \[0, 4\) before tensor "a" belong to no tensor/,
    );
    expect(parseError(rawFile(ok, f32(3))).message).toBe(
      'model.safetensors: data section is 12 bytes but the tensors cover only 8; the file is corrupt or was written incorrectly.',
    );
  });

  it('accepts tensors listed out of offset order and empty tensors anywhere', () => {
    const header = {
      b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      z: { dtype: 'I8', shape: [0], data_offsets: [8, 8] },
    };
    expect([...parse(rawFile(header, f32(2))).tensors.keys()]).toEqual(['b', 'e', 'a', 'z']);
  });

  it('requires __metadata__ to map strings to strings', () => {
    expect(parseError(rawFile({ __metadata__: { format: 'pt', step: 3 } })).message).toBe(
      'model.safetensors: "__metadata__" field "step" must be a string but is 3; the file is corrupt or was written incorrectly.',
    );
    expect(parseError(rawFile({ __metadata__: ['pt'] })).message).toMatch(/"__metadata__" must be an object of string values but is \["pt"\]/);
  });

  it('names the missing tensor on get', () => {
    const file = readSafetensors(rawFile(ok, f32(2)), 'mem.safetensors');
    expect(() => file.get('b')).toThrow('mem.safetensors: no tensor named "b"; available tensors are "a".');
    expect(() => file.info('b')).toThrow(SafetensorsError);
  });
});

describe('serialize validation', () => {
  it('names the tensor whose data does not match', () => {
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } })).toThrow(
      'serializeSafetensors: tensor "w" has 12 bytes of data but shape [2,2] of F32 needs 16.',
    );
    expect(() => serializeSafetensors({ w: { dtype: 'F8' as SafetensorsDType, shape: [1], data: new Uint8Array(1) } })).toThrow(
      /tensor "w" has unknown dtype "F8"; use one of F64, F32/,
    );
    expect(() => serializeSafetensors({ w: { dtype: 'U8', shape: [-1], data: new Uint8Array(1) } })).toThrow(/tensor "w" has shape \[-1\]/);
    expect(() => serializeSafetensors({ w: { dtype: 'U8', shape: [1], data: [1] as unknown as Uint8Array } })).toThrow(
      /tensor "w" has data that is not a typed array/,
    );
    const one = { dtype: 'U8' as const, shape: [1], data: new Uint8Array(1) };
    expect(() => serializeSafetensors([['w', one], ['w', one]])).toThrow(/tensor "w" appears twice/);
    expect(() => serializeSafetensors([['__metadata__', one]])).toThrow(/"__metadata__" cannot be used as a tensor name/);
    expect(() => serializeSafetensors({}, { step: 3 } as unknown as Record<string, string>)).toThrow(
      /metadata field "step" must be a string but is 3/,
    );
  });
});

describe('files on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mamba-ts-safetensors-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes atomically and lazily reads single tensors', async () => {
    const path = join(dir, 'single.safetensors');
    const tensors = sampleTensors();
    await writeSafetensorsFile(path, tensors, { format: 'pt' });
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // Same bytes as the in-memory writer.
    expect(new Uint8Array(await readFile(path))).toEqual(serializeSafetensors(tensors, { format: 'pt' }));

    const file = await SafetensorsFile.open(path);
    try {
      expect(file.metadata).toEqual({ format: 'pt' });
      expect(file.names().sort()).toEqual(Object.keys(tensors).sort());
      expect(file.info('f32')).toMatchObject({ dtype: 'F32', shape: [2, 3] });
      for (const [name, t] of Object.entries(tensors)) {
        const got = await file.get(name);
        expect(got.data).toBeInstanceOf(EXPECTED_CTOR[t.dtype]);
        expect(got.data.byteOffset).toBe(0);
        expect(Array.from(got.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as unknown as ArrayLike<unknown>));
      }
      await expect(file.get('nope')).rejects.toThrow(`${path}: no tensor named "nope"`);
    } finally {
      await file[Symbol.asyncDispose]();
    }
    await expect(file.get('f32')).rejects.toThrow(/cannot read tensor "f32" because the file was closed/);
  });

  it('reads only the header on open (a large sparse file opens instantly)', async () => {
    const path = join(dir, 'sparse.safetensors');
    const big = 512 * 1024 * 1024;
    const header = {
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      big: { dtype: 'U8', shape: [big], data_offsets: [8, 8 + big] },
    };
    const head = rawFile(header, bytesOf(new Float32Array([3, 4])));
    await writeFile(path, head);
    await truncate(path, head.length + big);
    const file = await SafetensorsFile.open(path);
    expect(Array.from((await file.get('small')).data as Float32Array)).toEqual([3, 4]);
    expect(file.info('big').end).toBe(8 + big);
    await file.close();
  });

  it('reads unaligned files correctly', async () => {
    const path = join(dir, 'unaligned.safetensors');
    let text = JSON.stringify({ w: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } });
    while ((8 + text.length) % 8 !== 3) text += ' ';
    await writeFile(path, rawFile(text, bytesOf(new Float64Array([1.5, -0.25]))));
    const file = await SafetensorsFile.open(path);
    expect(file.dataStart % 8).toBe(3);
    expect(Array.from((await file.get('w')).data as Float64Array)).toEqual([1.5, -0.25]);
    await file.close();
  });

  it('rejects truncated files with the path in the message', async () => {
    const path = join(dir, 'truncated.safetensors');
    const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    await writeFile(path, bytes.subarray(0, bytes.length - 4));
    await expect(SafetensorsFile.open(path)).rejects.toThrow(`${path}: tensor "w" has data_offsets [0, 16] beyond the 12-byte data section`);
    await writeFile(path, bytes.subarray(0, 3));
    await expect(SafetensorsFile.open(path)).rejects.toThrow(`${path}: file is 3 bytes`);
  });

  it('writes and reads sharded checkpoints', async () => {
    const ckpt = join(dir, 'sharded');
    const tensors = sampleTensors();
    const result = await writeShardedCheckpoint(ckpt, tensors, { maxShardBytes: 24, metadata: { format: 'pt' } });
    const files = (await readdir(ckpt)).sort();
    expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
    const n = result.shardPaths.length;
    expect(n).toBeGreaterThan(2);
    const pad = (k: number) => String(k).padStart(5, '0');
    expect(files).toEqual([
      ...Array.from({ length: n }, (_, i) => `model-${pad(i + 1)}-of-${pad(n)}.safetensors`),
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await readFile(join(ckpt, 'model.safetensors.index.json'), 'utf8'));
    const totalSize = Object.values(tensors).reduce((s, t) => s + t.data.byteLength, 0);
    expect(index.metadata).toEqual({ total_size: totalSize });
    expect(result.totalSize).toBe(totalSize);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(tensors).sort());

    const opened = await openCheckpoint(ckpt);
    try {
      expect(opened.names().sort()).toEqual(Object.keys(tensors).sort());
      expect(opened.metadata).toEqual({ total_size: String(totalSize) });
      for (const [name, t] of Object.entries(tensors)) {
        expect(opened.fileOf(name)).toBe(join(ckpt, index.weight_map[name]));
        expect(opened.info(name).shape).toEqual(t.shape);
        const got = await opened.get(name);
        expect(Array.from(got.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as unknown as ArrayLike<unknown>));
      }
      await expect(opened.get('missing')).rejects.toThrow(/model\.safetensors\.index\.json: no tensor named "missing"/);
    } finally {
      await opened.close();
    }
    // Each shard carries the metadata.
    const first = await SafetensorsFile.open(result.shardPaths[0]);
    expect(first.metadata).toEqual({ format: 'pt' });
    await first.close();
  });

  it('opens a directory with model.safetensors, or a file path directly', async () => {
    const ckpt = join(dir, 'single-dir');
    await mkdir(ckpt);
    await writeSafetensorsFile(join(ckpt, 'model.safetensors'), { a: { dtype: 'I32', shape: [1], data: new Int32Array([9]) } });
    for (const path of [ckpt, join(ckpt, 'model.safetensors')]) {
      const opened = await openCheckpoint(path);
      expect((await opened.get('a')).data[0]).toBe(9);
      await opened.close();
    }
  });

  it('explains broken sharded checkpoints', async () => {
    const ckpt = join(dir, 'broken');
    await writeShardedCheckpoint(ckpt, sampleTensors(), { maxShardBytes: 32 });
    const indexPath = join(ckpt, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    const writeIndex = (value: unknown) => writeFile(indexPath, typeof value === 'string' ? value : JSON.stringify(value));

    await writeIndex({ ...index, weight_map: { ...index.weight_map, 'extra.weight': 'model-00099-of-00099.safetensors' } });
    await expect(openCheckpoint(ckpt)).rejects.toThrow(
      `${indexPath}: shard file "model-00099-of-00099.safetensors" (holding tensor "extra.weight") does not exist in ${ckpt}; the checkpoint download is incomplete.`,
    );
    const shard = index.weight_map.f32 as string;
    await writeIndex({ ...index, weight_map: { ...index.weight_map, ghost: shard } });
    await expect(openCheckpoint(ckpt)).rejects.toThrow(`${indexPath}: weight_map puts tensor "ghost" in ${JSON.stringify(shard)}, but that shard has no such tensor.`);
    await writeIndex({ weight_map: { a: '../../etc/passwd' } });
    await expect(openCheckpoint(ckpt)).rejects.toThrow(/weight_map entry for tensor "a" must be a shard file name in the same directory/);
    await writeIndex({ weights: {} });
    await expect(openCheckpoint(ckpt)).rejects.toThrow(/must be a JSON object with a "weight_map" object/);
    await writeIndex('{ nope');
    await expect(openCheckpoint(ckpt)).rejects.toThrow(/cannot read the shard index/);
    // A corrupt shard is reported with the shard's path.
    await writeIndex(index);
    await writeFile(join(ckpt, shard), new Uint8Array(4));
    await expect(openCheckpoint(ckpt)).rejects.toThrow(`${join(ckpt, shard)}: file is 4 bytes`);

    const emptyDir = join(dir, 'empty');
    await mkdir(emptyDir);
    await expect(openCheckpoint(emptyDir)).rejects.toThrow(`${emptyDir}: directory has neither model.safetensors nor model.safetensors.index.json`);
    await expect(openCheckpoint(join(dir, 'nowhere'))).rejects.toThrow(/no such checkpoint file or directory/);
  });

  it('validates everything before writing and leaves no temp files on failure', async () => {
    const target = join(dir, 'fail');
    await mkdir(target);
    const bad = { w: { dtype: 'F32' as const, shape: [2], data: new Float32Array(1) } };
    await expect(writeSafetensorsFile(join(target, 'x.safetensors'), bad)).rejects.toThrow(/tensor "w" has 4 bytes/);
    await expect(writeShardedCheckpoint(join(target, 'shards'), bad, { maxShardBytes: 8 })).rejects.toThrow(/tensor "w"/);
    await expect(writeShardedCheckpoint(target, {}, { maxShardBytes: 0 })).rejects.toThrow(/maxShardBytes must be a positive integer/);
    // Renaming onto a non-empty directory fails after the temp file was written: it must be cleaned up.
    const blocker = join(target, 'blocked.safetensors');
    await mkdir(blocker);
    await writeFile(join(blocker, 'keep'), 'x');
    await expect(writeSafetensorsFile(blocker, sampleTensors())).rejects.toThrow();
    expect((await readdir(target)).sort()).toEqual(['blocked.safetensors']);
  });
});
