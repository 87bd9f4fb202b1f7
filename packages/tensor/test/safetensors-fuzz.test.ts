import { describe, expect, it } from 'vitest';
import { SafetensorsError, parseSafetensorsHeader, readSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { mulberry32 as rng } from '../src/ops/core.js';


const VALID = serializeSafetensors(
  {
    'layers.0.weight': { dtype: 'F32', shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    'layers.0.bias': { dtype: 'BF16', shape: [3], data: new Uint16Array([0x3f80, 0, 0xbf80]) },
    ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -1n]) },
    mask: { dtype: 'BOOL', shape: [5], data: new Uint8Array([1, 0, 1, 1, 0]) },
    scalar: { dtype: 'F64', shape: [], data: new Float64Array([0.5]) },
    empty: { dtype: 'I8', shape: [0], data: new Int8Array(0) },
  },
  { format: 'pt' },
);
const VALID_HEADER_END = 8 + Number(new DataView(VALID.buffer).getBigUint64(0, true));

/**
 * Parses `bytes`; returns a problem description, or undefined when it either succeeded consistently or failed
 * with a SafetensorsError.
 */
function check(bytes: Uint8Array): string | undefined {
  try {
    const file = readSafetensors(bytes, 'fuzz');
    const dataLength = bytes.length - parseSafetensorsHeader(bytes, bytes.length, 'fuzz').dataStart;
    let total = 0;
    for (const name of file.names()) {
      const { begin, end } = file.info(name);
      const { data } = file.get(name);
      if (data.byteLength !== end - begin || end > dataLength) return `inconsistent tensor ${name}`;
      total += data.byteLength;
    }
    if (total !== dataLength || total > bytes.length) return `tensors cover ${total} of ${dataLength} bytes`;
  } catch (e) {
    if (!(e instanceof SafetensorsError)) return `${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;
  }
  // A prefix shorter than the header must also fail cleanly (this is how the file reader calls the parser).
  try {
    parseSafetensorsHeader(bytes.subarray(0, Math.min(bytes.length, 9)), bytes.length, 'fuzz');
  } catch (e) {
    if (!(e instanceof SafetensorsError)) return `prefix: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;
  }
  return undefined;
}

function setLength(bytes: Uint8Array, n: bigint): void {
  if (bytes.length >= 8) new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(0, BigInt.asUintN(64, n), true);
}

describe('safetensors fuzz', () => {
  it('accepts the unmutated file', () => {
    expect(check(VALID)).toBeUndefined();
    expect(readSafetensors(VALID).names()).toHaveLength(6);
  });

  it('random byte strings either parse consistently or throw SafetensorsError', () => {
    const next = rng(20240601);
    const problems: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const bytes = new Uint8Array(Math.floor(next() * 160));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(next() * 256);
      // Half the time claim a header length that fits, so the JSON stage is reached.
      if (i % 2 === 0 && bytes.length > 8) {
        setLength(bytes, BigInt(Math.floor(next() * (bytes.length - 7))));
        if (next() < 0.5) bytes[8] = 0x7b; // '{'
      }
      const problem = check(bytes);
      if (problem) problems.push(`#${i}: ${problem}`);
    }
    expect(problems).toEqual([]);
  });

  it('mutations of a valid file either parse consistently or throw SafetensorsError', () => {
    const next = rng(7);
    const pick = (n: number) => Math.floor(next() * n);
    const digits = '0123456789';
    const problems: string[] = [];
    let parsed = 0;
    for (let i = 0; i < 2000; i++) {
      let bytes = VALID.slice();
      switch (i % 5) {
        case 0: // flip a few bits anywhere
          for (let k = 1 + pick(4); k > 0; k--) bytes[pick(bytes.length)] ^= 1 << pick(8);
          break;
        case 1: // rewrite a digit inside the header (shapes, offsets)
          for (let k = 1 + pick(2); k > 0; k--) {
            const at = 8 + pick(VALID_HEADER_END - 8);
            if (digits.includes(String.fromCharCode(bytes[at]))) bytes[at] = digits.charCodeAt(pick(10));
            else bytes[at] = ' {}[],:"-.e0'.charCodeAt(pick(13));
          }
          break;
        case 2: // truncate
          bytes = bytes.slice(0, pick(bytes.length));
          break;
        case 3: // tweak the header length
          setLength(bytes, BigInt(VALID_HEADER_END - 8 + pick(33) - 16));
          break;
        default: // wild header length, or extra trailing bytes
          if (next() < 0.5) setLength(bytes, BigInt(pick(2 ** 32)) * BigInt(pick(2 ** 32)));
          else {
            const longer = new Uint8Array(bytes.length + 1 + pick(16));
            longer.set(bytes);
            bytes = longer;
          }
      }
      const problem = check(bytes);
      if (problem) problems.push(`#${i}: ${problem}`);
      try {
        readSafetensors(bytes);
        parsed++;
      } catch {
        // expected for most mutations
      }
    }
    expect(problems).toEqual([]);
    // Sanity: the mutations are not all fatal (e.g. bit flips in tensor data keep the file valid).
    expect(parsed).toBeGreaterThan(50);
  });
});
